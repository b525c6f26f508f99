// Initiates each single-member replica set of the sharded cluster and waits until
// its member is a writable primary. Every step is a no-op when already done, so
// the one-shot container can run again.
const replicaSets = [
  {_id: "cfg", configsvr: true, host: "configsvr:27017"},
  {_id: "shard1", host: "shard1:27017"},
  {_id: "shard2", host: "shard2:27017"},
];

// mongosh throws on some command errors and returns {ok: 0} on others.
function run(admin, command) {
  try {
    return admin.runCommand(command);
  } catch (error) {
    return {ok: 0, codeName: error.codeName, errmsg: error.message};
  }
}

for (const set of replicaSets) {
  const admin = new Mongo(`mongodb://${set.host}/?directConnection=true`).getDB("admin");
  const status = run(admin, {replSetGetStatus: 1});
  if (status.ok !== 1) {
    if (status.codeName !== "NotYetInitialized") throw new Error(`${set._id}: ${status.errmsg}`);
    const config = {_id: set._id, members: [{_id: 0, host: set.host}]};
    if (set.configsvr) config.configsvr = true;
    const initiated = run(admin, {replSetInitiate: config});
    if (initiated.ok !== 1) throw new Error(`${set._id}: ${initiated.errmsg}`);
  }
  let primary = false;
  for (let i = 0; i < 60 && !primary; i++) {
    primary = run(admin, {hello: 1}).isWritablePrimary === true;
    if (!primary) sleep(1000);
  }
  if (!primary) throw new Error(`${set._id}: no writable primary after 60 s`);
  print(`${set._id}: primary ${set.host}`);
}

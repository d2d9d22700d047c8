"""Checks of the deployment artefacts that need more than a one-line command.

Run by tests/deploy/check.sh with the venv's Python (PyYAML, kubernetes-validate,
check-jsonschema and dockerfile installed, all pinned in requirements.txt):

    validate.py ROOT K8S_VERSION PROMTOOL

Prints one line per check, `ok - NAME`, `not ok - NAME` (followed by indented
details) or `skip - NAME # reason`; check.sh counts them. Exits 1 if a check failed.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlparse

import yaml

ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path.cwd()
K8S_VERSION = sys.argv[2] if len(sys.argv) > 2 else "1.33.0"
PROMTOOL = sys.argv[3] if len(sys.argv) > 3 else "promtool"

FAILED = 0


class CheckFailed(Exception):
    """A check's verdict, with the problems found."""

    def __init__(self, problems: Iterable[str] | str):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class Skip(Exception):
    """A check that cannot run here (the reason is printed)."""


def check(name: str, fn: Callable[[], None]) -> None:
    global FAILED
    try:
        fn()
    except Skip as e:
        print(f"skip - {name} # {e}")
    except CheckFailed as e:
        FAILED += 1
        print(f"not ok - {name}")
        for p in e.problems:
            print(f"    {p}")
    except Exception as e:  # a crash in a check is a failed check, not a crashed run
        FAILED += 1
        print(f"not ok - {name}")
        print(f"    {type(e).__name__}: {e}")
    else:
        print(f"ok - {name}")


def expect(problems: list[str]) -> None:
    if problems:
        raise CheckFailed(problems)


def rel(p: Path) -> str:
    try:
        return str(p.relative_to(ROOT))
    except ValueError:
        return str(p)


def load_yaml_all(path: Path) -> list[Any]:
    with path.open() as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---------------------------------------------------------------------------------
# The product contract: metrics, label values, config shape (docs/metrics.md, docs/configuration.md)
# ---------------------------------------------------------------------------------

def load_metric_contract() -> dict[str, tuple[str, set[str]]]:
    contract = {}
    for line in (ROOT / "tests/deploy/metrics-contract.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, kind, *labels = line.split()
        contract[name] = (kind, set(labels))
    return contract


METRICS = load_metric_contract()

# Closed label-value sets (docs/metrics.md). A label not
# listed here (class, model, endpoint, ...) comes from config and is not checked.
LABEL_VALUES = {
    "tier": {"flex", "standard", "priority", "none"},
    "outcome": {"success", "upstream_error", "gateway_error", "client_error",
                "deadline_exceeded", "cancelled"},
    "reason": {"flex_capacity", "rate_limit", "server_error", "connect_error", "timeout",
               "deadline"},
    "kind": None,  # per metric, below
}
RESULT_VALUES = {"success", "flex_capacity", "rate_limit", "billing", "server_error",
                 "connect_error", "timeout", "client_error"}
KIND_VALUES = {
    "flexgate_tokens_total": {"input", "cached_input", "cache_write", "output", "reasoning"},
    "flexgate_upstream_ratelimit_remaining": {"requests", "tokens"},
}

# Config file shape: section -> allowed keys; "classes" holds named tables.
# Mirrors src/config/raw.rs; the binary's own `check-config` (run below when a release
# build exists) is the authority, this catches typos in manifests without one.
CONFIG_SHAPE = {
    "server": {"listen", "admin_listen", "max_body", "drain_timeout", "header_timeout", "body_timeout", "threads", "tls_cert", "tls_key"},
    "upstream": {"base_url", "timeout", "connect_timeout", "idle_timeout", "http2", "proxy", "api_key_env"},
    "auth": {"mode", "keys"},
    "routing": {"honor_client_tier", "default_class", "flex_class", "standard_class", "rules"},
    "retry": {"base_delay", "max_delay", "client_timeout_margin"},
    "admission": {"headroom", "flex_min_limit", "flex_max_limit", "flex_initial_limit", "flex_backoff_ratio",
                  "flex_cut_interval", "flex_close_after", "flex_probe_base", "flex_probe_max", "throttle_k",
                  "throttle_window", "retry_budget_ratio", "retry_budget_floor", "retry_budget_window"},
    "pricing": {"file"},
    "log": {"format", "level"},
    "websocket": {"idle_timeout", "max_lifetime"},
    "store": {"dir"},
    "shared": {"redis_url"},
    "batch": {"class", "max_in_flight"},
}
BUDGET_KEYS = {"usd", "period", "soft_usd", "on_soft", "fail", "reserve_usd"}
CLASS_KEYS = {"tier", "deadline", "escalate", "escalate_reserve", "max_attempts", "path_prefix"}
AUTH_KEY_KEYS = {"client", "sha256", "env"}
DURATION_KEYS = {("server", "drain_timeout"), ("server", "header_timeout"), ("server", "body_timeout"),
                 ("upstream", "timeout"),
                 ("upstream", "connect_timeout"), ("upstream", "idle_timeout"),
                 ("websocket", "idle_timeout"), ("websocket", "max_lifetime"),
                 ("admission", "flex_cut_interval"), ("admission", "flex_probe_base"),
                 ("admission", "flex_probe_max"), ("admission", "throttle_window"),
                 ("admission", "retry_budget_window")}

_DURATION_RE = re.compile(r"^\s*(\d+(\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> float:
    total, rest = 0.0, text.strip()
    if not rest:
        raise ValueError(f"empty duration {text!r}")
    for part in re.findall(r"\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)", rest):
        m = _DURATION_RE.match(part)
        assert m
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(3)]
    if re.sub(r"\d+(?:\.\d+)?\s*(?:ms|s|m|h|d)", "", rest).strip():
        raise ValueError(f"not a duration: {text!r}")
    return total


def config_problems(cfg: dict[str, Any], where: str) -> list[str]:
    """Keys and values of a flexgate config, against the documented shape."""
    problems = []
    for section, value in cfg.items():
        if section == "classes":
            if not isinstance(value, dict) or not value:
                problems.append(f"{where}: [classes] must hold at least one class table")
                continue
            for name, cls in value.items():
                for key in set(cls) - CLASS_KEYS:
                    problems.append(f"{where}: unknown key classes.{name}.{key}")
                if cls.get("tier") not in {"flex", "standard", "priority"}:
                    problems.append(f"{where}: classes.{name}.tier must be flex, standard or priority")
                if "escalate" in cls and cls["escalate"] not in {"standard", "never"}:
                    problems.append(f"{where}: classes.{name}.escalate must be standard or never")
                for key in ("deadline", "escalate_reserve"):
                    if key in cls:
                        try:
                            duration_seconds(cls[key])
                        except ValueError as e:
                            problems.append(f"{where}: classes.{name}.{key}: {e}")
                if "path_prefix" in cls and not str(cls["path_prefix"]).startswith("/"):
                    problems.append(f"{where}: classes.{name}.path_prefix must start with /")
            continue
        if section == "budgets":
            for client, budget in (value or {}).items():
                for key in set(budget) - BUDGET_KEYS:
                    problems.append(f"{where}: unknown key budgets.{client}.{key}")
                for key in {"usd", "period"} - set(budget):
                    problems.append(f"{where}: budgets.{client} needs {key}")
            continue
        if section not in CONFIG_SHAPE:
            problems.append(f"{where}: unknown section [{section}]")
            continue
        for key in set(value) - CONFIG_SHAPE[section]:
            problems.append(f"{where}: unknown key {section}.{key}")
    for section, key in DURATION_KEYS:
        if key in cfg.get(section, {}):
            try:
                duration_seconds(cfg[section][key])
            except ValueError as e:
                problems.append(f"{where}: {section}.{key}: {e}")
    for key in ("listen", "admin_listen"):
        if key in cfg.get("server", {}):
            if not re.match(r"^[\w.:\[\]-]+:\d+$", cfg["server"][key]):
                problems.append(f"{where}: server.{key} is not HOST:PORT")
    auth = cfg.get("auth", {})
    mode = auth.get("mode", "passthrough")
    if mode not in {"passthrough", "managed"}:
        problems.append(f"{where}: auth.mode must be passthrough or managed")
    keys = auth.get("keys", [])
    if mode == "managed" and not keys:
        problems.append(f"{where}: auth.mode = managed needs [[auth.keys]]")
    for i, k in enumerate(keys):
        for key in set(k) - AUTH_KEY_KEYS:
            problems.append(f"{where}: unknown key auth.keys[{i}].{key}")
        if "client" not in k or (("sha256" in k) == ("env" in k)):
            problems.append(f"{where}: auth.keys[{i}] needs client and one of sha256, env")
    default = cfg.get("routing", {}).get("default_class")
    if default is not None and default not in cfg.get("classes", {}):
        problems.append(f"{where}: routing.default_class {default!r} is not a class")
    return problems


def listen_port(cfg: dict[str, Any], key: str = "listen") -> int | None:
    value = cfg.get("server", {}).get(key)
    if value is None:
        return 8080 if key == "listen" else None
    return int(value.rsplit(":", 1)[1])


def flex_prefix(cfg: dict[str, Any]) -> str | None:
    for cls in cfg.get("classes", {}).values():
        if cls.get("tier") == "flex" and "path_prefix" in cls:
            return cls["path_prefix"]
    return None


# ---------------------------------------------------------------------------------
# PromQL helpers (for the dashboard, the rules and the rule tests)
# ---------------------------------------------------------------------------------

METRIC_RE = re.compile(r"flexgate_[a-z0-9_]+")
MATCHER_RE = re.compile(r'([a-z_][a-z0-9_]*)\s*(=~|!~|!=|=)\s*"([^"]*)"')


def base_metric(name: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", name)


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric, matcher text) for each `flexgate_x{...}` in an expression."""
    out = []
    for m in re.finditer(r"(flexgate_[a-z0-9_]+)\s*(\{[^}]*\})?", expr):
        out.append((m.group(1), m.group(2) or ""))
    return out


def matching_paren(text: str, start: int) -> int:
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise ValueError(f"unbalanced parentheses in {text!r}")


def aggregations(expr: str) -> list[tuple[set[str], str]]:
    """(grouping labels, inner expression) for each `OP by (labels) (inner)`."""
    out = []
    for m in re.finditer(r"\b(sum|min|max|avg|count|topk|bottomk|quantile)\s+by\s*\(([^)]*)\)\s*\(", expr):
        open_at = m.end() - 1
        inner = expr[open_at + 1:matching_paren(expr, open_at)]
        labels = {x.strip() for x in m.group(2).split(",") if x.strip()}
        out.append((labels, inner))
    return out


def promql_problems(expr: str, where: str) -> list[str]:
    """Metric names, label values and grouping labels against the contract."""
    problems = []
    for metric, matchers in selectors(expr):
        base = base_metric(metric)
        if metric in METRICS:
            base = metric
        if base not in METRICS:
            problems.append(f"{where}: {metric} is not a flexgate metric (metrics-contract.txt)")
            continue
        kind, labels = METRICS[base]
        if metric != base and kind != "histogram":
            problems.append(f"{where}: {metric}: {base} is a {kind}, not a histogram")
        for label, op, value in MATCHER_RE.findall(matchers):
            if label in ("job", "instance"):
                continue
            if label not in labels:
                problems.append(f"{where}: {base} has no label {label!r}")
                continue
            allowed = LABEL_VALUES.get(label)
            if label == "result":
                allowed = RESULT_VALUES
            elif label == "kind":
                allowed = KIND_VALUES.get(base)
            if allowed is None:
                continue
            values = value.split("|") if op in ("=~", "!~") else [value]
            for v in values:
                if v not in allowed:
                    problems.append(f"{where}: {base}{{{label}}} has no value {v!r}")
    for by, inner in aggregations(expr):
        used = {base_metric(m) if base_metric(m) in METRICS else m for m in METRIC_RE.findall(inner)}
        for metric in used:
            if metric not in METRICS:
                continue
            kind, labels = METRICS[metric]
            allowed = labels | {"job", "instance"} | ({"le"} if kind == "histogram" else set())
            for label in sorted(by - allowed):
                problems.append(f"{where}: aggregates {metric} by {label!r}, which it does not have")
    return problems


def rules_file() -> Path:
    return ROOT / "deploy/prometheus/rules/flexgate.rules.yml"


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(rules_file().read_text())["groups"]


def all_rules() -> list[dict[str, Any]]:
    return [r for g in rule_groups() for r in g["rules"]]


def rule_test_files() -> list[Path]:
    return sorted((ROOT / "deploy/prometheus/tests").glob("*.yml"))


def dashboard_files() -> list[Path]:
    return sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))


def dashboard_panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # panels of collapsed rows
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, expr) for every query in every dashboard, variables included."""
    out = []
    for path in dashboard_files():
        dash = json.loads(path.read_text())
        for p in dashboard_panels(dash):
            for t in p.get("targets", []):
                out.append((f"{path.name} panel {p.get('title')!r} {t.get('refId')}", t.get("expr", "")))
        for v in dash.get("templating", {}).get("list", []):
            if v.get("type") == "query":
                q = v.get("query")
                q = q.get("query", "") if isinstance(q, dict) else q
                out.append((f"{path.name} variable {v.get('name')}", q or ""))
    return out


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's variables so promtool can parse the query."""
    expr = expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
    expr = expr.replace("$__range", "1h")
    expr = re.sub(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", ".*", expr)
    return expr


# ---------------------------------------------------------------------------------
# Dockerfile and .dockerignore
# ---------------------------------------------------------------------------------

RELEASE_BUILD = "cargo build --release --locked"


def dockerfile_stages() -> list[dict[str, Any]]:
    import dockerfile  # the BuildKit parser, as a Python extension

    commands = dockerfile.parse_file(str(ROOT / "Dockerfile"))
    args: dict[str, str] = {}
    stages: list[dict[str, Any]] = []
    for c in commands:
        if c.cmd == "ARG" and not stages:
            name, _, default = c.value[0].partition("=")
            args[name] = default
        elif c.cmd == "FROM":
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), c.value[0])
            name = c.value[2] if len(c.value) > 2 and c.value[1].upper() == "AS" else None
            stages.append({"image": image, "name": name, "commands": []})
        elif stages:
            stages[-1]["commands"].append(c)
        elif c.cmd != "ARG":
            raise CheckFailed(f"Dockerfile: {c.cmd} before the first FROM")
    return stages


def shell_commands(run_value: str) -> list[str]:
    return [" ".join(part.split()) for part in re.split(r"&&|;|\|\|", run_value) if part.strip()]


def check_dockerfile_structure() -> None:
    stages = dockerfile_stages()
    problems = []
    if len(stages) < 2:
        problems.append("not multi-stage")
    final = stages[-1]
    if not re.search(r"distroless|-slim", final["image"]):
        problems.append(f"runtime image {final['image']} is neither distroless nor slim")
    if any(re.search(r"\bcargo\b", " ".join(c.value)) for c in final["commands"] if c.cmd == "RUN"):
        problems.append("the runtime stage runs cargo")
    expect(problems)


def check_dockerfile_build_command() -> None:
    stages = dockerfile_stages()
    builds, problems = [], []
    for s in stages:
        for c in s["commands"]:
            if c.cmd != "RUN":
                continue
            for cmd in shell_commands(" ".join(c.value)):
                if re.search(r"\bcargo\s+(build|b)\b", cmd):
                    builds.append((s, c, cmd))
                    if cmd != RELEASE_BUILD:
                        problems.append(f"line {c.start_line}: `{cmd}` is not exactly `{RELEASE_BUILD}`")
    if not builds:
        problems.append(f"no `{RELEASE_BUILD}` in the Dockerfile")
    expect(problems)


def check_dockerfile_dependency_layer() -> None:
    """A cargo build runs before the sources are copied in: that layer holds the deps."""
    builder = next((s for s in dockerfile_stages() if s["name"] == "builder"), None)
    if builder is None:
        raise CheckFailed("no stage named builder")
    seen_sources, dep_build, src_build = False, False, False
    for c in builder["commands"]:
        if c.cmd in ("COPY", "ADD") and not any(f.startswith("--from") for f in c.flags):
            sources = c.value[:-1]
            if any(s in (".", "./", "src", "src/", "./src") for s in sources):
                seen_sources = True
        if c.cmd == "RUN" and RELEASE_BUILD in shell_commands(" ".join(c.value)):
            if seen_sources:
                src_build = True
            else:
                dep_build = True
    problems = []
    if not dep_build:
        problems.append("no release build before the sources are copied (no cached dependency layer)")
    if not src_build:
        problems.append("no release build after the sources are copied")
    expect(problems)


def check_dockerfile_runtime() -> None:
    final = dockerfile_stages()[-1]
    cmds = final["commands"]
    problems = []

    users = [c.value[0] for c in cmds if c.cmd == "USER"]
    if not users:
        problems.append("runtime stage has no USER (would run as root)")
    else:
        user = users[-1].split(":")[0]
        if user in ("root", "0"):
            problems.append(f"runtime stage runs as {users[-1]}")

    hc = [c for c in cmds if c.cmd == "HEALTHCHECK"]
    if not hc:
        problems.append("no HEALTHCHECK")
    else:
        v = hc[-1].value
        if not (hc[-1].json and v[0] == "CMD" and v[1].endswith("/flexgate") and v[2] == "healthcheck"):
            problems.append(f"HEALTHCHECK is not the exec form of `flexgate healthcheck`: {hc[-1].original}")

    exposed = {p.split("/")[0] for c in cmds if c.cmd == "EXPOSE" for p in c.value}
    for port in ("8080", "9090"):
        if port not in exposed:
            problems.append(f"port {port} is not EXPOSEd")

    entry = [c for c in cmds if c.cmd == "ENTRYPOINT"]
    if not entry or not entry[-1].json or entry[-1].value[0] != "/usr/local/bin/flexgate":
        problems.append("ENTRYPOINT is not [\"/usr/local/bin/flexgate\"]")
    cmd = [c for c in cmds if c.cmd == "CMD"]
    if not cmd or list(cmd[-1].value) != ["serve", "--config", "/etc/flexgate/flexgate.toml"]:
        problems.append("CMD is not [\"serve\", \"--config\", \"/etc/flexgate/flexgate.toml\"]")

    copies = [c for c in cmds if c.cmd == "COPY"]
    if not any(c.value[-1] == "/etc/flexgate/flexgate.toml" for c in copies):
        problems.append("no config copied to /etc/flexgate/flexgate.toml")
    if not any(c.value[-1] == "/usr/local/bin/flexgate" and any(f.startswith("--from=") for f in c.flags)
               for c in copies):
        problems.append("the binary is not copied from a build stage to /usr/local/bin/flexgate")

    labels = {}
    for c in cmds:
        if c.cmd == "LABEL":
            for k, v in zip(c.value[::2], c.value[1::2]):
                labels[k] = v.strip('"')
    for key in ("title", "description", "version", "revision", "created", "licenses", "source"):
        if not labels.get(f"org.opencontainers.image.{key}"):
            problems.append(f"OCI label org.opencontainers.image.{key} missing")
    expect(problems)


def dockerignore_patterns() -> list[tuple[bool, str]]:
    path = ROOT / ".dockerignore"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        pat = os.path.normpath(pat.lstrip("/")).rstrip("/")
        out.append((negate, pat))
    return out


def _glob_match(pattern: str, path: str) -> bool:
    # Docker's matcher: filepath.Match per segment, ** for any number of segments.
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            regex += "[^/]"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


def dockerignored(path: str) -> bool:
    """Whether Docker leaves `path` (relative to the context) out of the context."""
    path = os.path.normpath(path)
    parts = path.split("/")
    candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    excluded = False
    for negate, pat in dockerignore_patterns():
        # A pattern that matches a parent directory excludes everything under it.
        if any(_glob_match(pat, c) for c in candidates):
            excluded = not negate
    return excluded


def check_dockerignore() -> None:
    problems = []
    if not (ROOT / ".dockerignore").exists():
        raise CheckFailed(".dockerignore is missing")
    for path in ("target", "target/release/flexgate", ".git", ".tools"):
        if not dockerignored(path):
            problems.append(f"{path} is sent with the build context")
    needed = ["Cargo.toml", "Cargo.lock", "src/main.rs", "config/flexgate.toml",
              "deploy/docker/cargo-deps-stub.sh"]
    # Files the crate embeds at compile time must be in the context too.
    for rs in (ROOT / "src").rglob("*.rs"):
        for m in re.finditer(r'include_(?:str|bytes)!\(\s*"([^"]+)"', rs.read_text(errors="replace")):
            target = (rs.parent / m.group(1)).resolve()
            needed.append(rel(target))
    for path in needed:
        if dockerignored(path):
            problems.append(f"{path} is needed by the build but excluded by .dockerignore")
    expect(problems)


def check_dockerfile_sources_exist() -> None:
    problems = []
    for s in dockerfile_stages():
        for c in s["commands"]:
            if c.cmd not in ("COPY", "ADD") or any(f.startswith("--from") for f in c.flags):
                continue
            for src in c.value[:-1]:
                if src in (".", "./"):
                    continue
                matches = [p for p in ROOT.glob(src)] if any(ch in src for ch in "*?[") else [ROOT / src]
                if not any(m.exists() for m in matches):
                    problems.append(f"line {c.start_line}: COPY source {src} does not exist")
                elif dockerignored(src):
                    problems.append(f"line {c.start_line}: COPY source {src} is excluded by .dockerignore")
    expect(problems)


def check_dependency_stub() -> None:
    """The stub script turns today's manifest into a dependency-only crate that resolves."""
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        shutil.copy(ROOT / "Cargo.toml", t)
        shutil.copy(ROOT / "Cargo.lock", t)
        subprocess.run(["sh", str(ROOT / "deploy/docker/cargo-deps-stub.sh")], cwd=t, check=True,
                       capture_output=True, text=True)
        manifest = tomllib.loads((t / "Cargo.toml").read_text())
        problems = []
        for table in ("bench", "test", "example"):
            if manifest.get(table):
                problems.append(f"stubbed manifest still declares [[{table}]]")
        paths = ["src/main.rs", "src/lib.rs"]
        paths += [b["path"] for b in manifest.get("bin", []) if "path" in b]
        if "path" in manifest.get("lib", {}):
            paths.append(manifest["lib"]["path"])
        build = manifest.get("package", {}).get("build")
        if isinstance(build, str):
            paths.append(build)
        for p in paths:
            if not (t / p).exists():
                problems.append(f"stubbed crate lacks {p}")
        if (t / "src").exists():
            real = [p for p in (t / "src").rglob("*.rs") if p.read_text().strip() not in ("", "fn main() {}")]
            if real:
                problems.append(f"stubbed crate has real sources: {real}")
        cmd = ["cargo", "metadata", "--locked", "--format-version", "1", "--no-deps"]
        r = subprocess.run(cmd + ["--offline"], cwd=t, capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(cmd, cwd=t, capture_output=True, text=True)
        if r.returncode != 0:
            problems.append("`cargo metadata --locked` on the stubbed manifest failed: "
                            + r.stderr.strip().splitlines()[-1])
        expect(problems)


def check_ci_runs_release_build() -> None:
    scripts = [ROOT / ".ci/run", ROOT / "tests/run-all.sh"]
    present = [s for s in scripts if s.exists()]
    if not present:
        raise Skip(".ci/run and tests/run-all.sh do not exist yet")
    for s in present:
        if RELEASE_BUILD in s.read_text():
            return
    raise CheckFailed(f"neither of {', '.join(rel(s) for s in present)} runs `{RELEASE_BUILD}`, "
                      "the Dockerfile's build command")


# Shared objects that gcr.io/distroless/cc-debian12 provides (glibc, libgcc_s).
DISTROLESS_CC_LIBS = {"libc.so.6", "libm.so.6", "libgcc_s.so.1", "libdl.so.2", "libpthread.so.0",
                      "librt.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", "libutil.so.1"}


def target_dir() -> Path:
    """Cargo's target directory: `CARGO_TARGET_DIR` when set (relative to the repo), else target/."""
    return ROOT / os.environ.get("CARGO_TARGET_DIR", "target")


def flexgate_binary() -> Path | None:
    for p in (target_dir() / "release/flexgate", target_dir() / "debug/flexgate"):
        if p.is_file() and os.access(p, os.X_OK):
            return p
    return None


def check_binary_libs() -> None:
    binary = target_dir() / "release/flexgate"
    if not binary.is_file():
        binary = flexgate_binary()
    if binary is None:
        raise Skip("no built flexgate binary under target/")
    if shutil.which("readelf") is None:
        raise Skip("readelf is not installed")
    out = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True, check=True).stdout
    needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out))
    missing = needed - DISTROLESS_CC_LIBS
    expect([f"{rel(binary)} needs {lib}, which the distroless cc runtime image lacks"
            for lib in sorted(missing)])


# ---------------------------------------------------------------------------------
# Kubernetes
# ---------------------------------------------------------------------------------

def k8s_files() -> list[Path]:
    return sorted((ROOT / "deploy/kubernetes").rglob("*.yaml")) + sorted((ROOT / "deploy/kubernetes").rglob("*.yml"))


def k8s_resources() -> list[tuple[Path, dict[str, Any]]]:
    return [(f, d) for f in k8s_files() for d in load_yaml_all(f)]


def is_crd(doc: dict[str, Any]) -> bool:
    return doc.get("apiVersion", "").startswith("monitoring.coreos.com/")


def check_k8s_schema(path: Path, doc: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        import kubernetes_validate
        from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except ValidationError as e:
            where = ".".join(str(x) for x in e.path)
            raise CheckFailed(f"{where}: {e.message}") from None
        except SchemaNotFoundError as e:
            raise CheckFailed(e.message) from None
    return run


# PodMonitor: no schema ships with kubernetes-validate (it is a CRD of the Prometheus
# Operator), so this checks its structure against the fields of monitoring.coreos.com/v1
# that a PodMonitor endpoint commonly uses, and its selector against our pods.
PODMONITOR_SPEC_KEYS = {"selector", "podMetricsEndpoints", "namespaceSelector", "jobLabel",
                        "podTargetLabels", "sampleLimit", "targetLimit"}
PODMONITOR_ENDPOINT_KEYS = {"port", "portNumber", "path", "interval", "scrapeTimeout", "scheme",
                            "honorLabels", "honorTimestamps", "relabelings", "metricRelabelings",
                            "params", "enableHttp2", "followRedirects", "filterRunning"}
RELABEL_KEYS = {"action", "sourceLabels", "separator", "targetLabel", "regex", "modulus",
                "replacement"}
DURATION_PROM = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


def pod_templates() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path, doc in k8s_resources():
        if doc.get("kind") in ("Deployment", "StatefulSet", "DaemonSet"):
            out.append((f"{rel(path)} {doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]))
    return out


def all_containers(pod_spec: dict[str, Any]) -> list[dict[str, Any]]:
    return list(pod_spec.get("initContainers", [])) + list(pod_spec.get("containers", []))


def is_flexgate(container: dict[str, Any]) -> bool:
    return "flexgate" in container.get("image", "").rsplit("/", 1)[-1]


def check_podmonitor(path: Path, doc: dict[str, Any]) -> Callable[[], None]:
    def run() -> None:
        problems = []
        if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != "PodMonitor":
            problems.append("not a monitoring.coreos.com/v1 PodMonitor")
        if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc.get("metadata", {}).get("name", "")):
            problems.append("metadata.name is not a DNS label")
        spec = doc.get("spec", {})
        for key in set(spec) - PODMONITOR_SPEC_KEYS:
            problems.append(f"spec.{key}: unknown field")
        selector = spec.get("selector", {}).get("matchLabels", {})
        if not selector:
            problems.append("spec.selector.matchLabels is empty (would select every pod)")
        endpoints = spec.get("podMetricsEndpoints", [])
        if not endpoints:
            problems.append("spec.podMetricsEndpoints is empty")
        for i, ep in enumerate(endpoints):
            for key in set(ep) - PODMONITOR_ENDPOINT_KEYS:
                problems.append(f"podMetricsEndpoints[{i}].{key}: unknown field")
            if not isinstance(ep.get("port"), str):
                problems.append(f"podMetricsEndpoints[{i}].port must name a container port")
            if not str(ep.get("path", "/metrics")).startswith("/"):
                problems.append(f"podMetricsEndpoints[{i}].path must start with /")
            for key in ("interval", "scrapeTimeout"):
                if key in ep and not DURATION_PROM.match(str(ep[key])):
                    problems.append(f"podMetricsEndpoints[{i}].{key}: {ep[key]!r} is not a duration")
            for j, r in enumerate(ep.get("relabelings", [])):
                for key in set(r) - RELABEL_KEYS:
                    problems.append(f"podMetricsEndpoints[{i}].relabelings[{j}].{key}: unknown field")
            job = [r for r in ep.get("relabelings", []) if r.get("targetLabel") == "job"]
            if not job or job[-1].get("replacement") != "flexgate":
                problems.append(f"podMetricsEndpoints[{i}] does not set job=flexgate, "
                                "which the alert rules select on")
        # The selector must find our pods, and the port must exist in them.
        selected = [(w, t) for w, t in pod_templates()
                    if all(t["metadata"].get("labels", {}).get(k) == v for k, v in selector.items())]
        if not selected:
            problems.append(f"selector {selector} matches no pod template in deploy/kubernetes")
        for w, t in selected:
            ports = {p.get("name") for c in all_containers(t["spec"]) for p in c.get("ports", [])}
            for ep in endpoints:
                if ep.get("port") not in ports:
                    problems.append(f"{w}: has no container port named {ep.get('port')!r}")
        expect(problems)
    return run


def configmap_configs() -> dict[str, tuple[Path, dict[str, Any]]]:
    out = {}
    for path, doc in k8s_resources():
        if doc.get("kind") == "ConfigMap" and "flexgate.toml" in doc.get("data", {}):
            out[doc["metadata"]["name"]] = (path, tomllib.loads(doc["data"]["flexgate.toml"]))
    return out


def check_k8s_configmaps() -> None:
    problems = []
    configs = configmap_configs()
    if not configs:
        raise CheckFailed("no ConfigMap with a flexgate.toml key")
    for name, (path, cfg) in configs.items():
        problems += config_problems(cfg, f"{rel(path)} ConfigMap/{name}")
    expect(problems)


def probe_port(probe: dict[str, Any], container: dict[str, Any]) -> int | None:
    port = probe.get("httpGet", {}).get("port")
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    return None


def flexgate_config_for(pod: dict[str, Any], container: dict[str, Any], where: str,
                        problems: list[str]) -> dict[str, Any] | None:
    configs = configmap_configs()
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    for vol in pod["spec"].get("volumes", []):
        cm = vol.get("configMap", {}).get("name")
        if cm is None or vol["name"] not in mounts:
            continue
        if mounts[vol["name"]] != "/etc/flexgate":
            problems.append(f"{where}: ConfigMap {cm} is mounted at {mounts[vol['name']]}, not /etc/flexgate")
        if cm not in configs:
            problems.append(f"{where}: ConfigMap {cm} is not defined in deploy/kubernetes")
            return None
        return configs[cm][1]
    problems.append(f"{where}: no ConfigMap mounted at /etc/flexgate")
    return None


def check_k8s_workloads() -> None:
    """Probes, resources, security, grace period, ports and env of every workload."""
    problems: list[str] = []
    templates = pod_templates()
    if not templates:
        raise CheckFailed("no Deployment in deploy/kubernetes")
    for where, pod in templates:
        spec = pod["spec"]
        pod_sc = spec.get("securityContext", {})
        flexgates = [c for c in all_containers(spec) if is_flexgate(c)]
        if len(flexgates) != 1:
            problems.append(f"{where}: expected one flexgate container, found {len(flexgates)}")
            continue
        fg = flexgates[0]
        for c in all_containers(spec):
            res = c.get("resources", {})
            for key in ("cpu", "memory"):
                if key not in res.get("requests", {}):
                    problems.append(f"{where}: container {c['name']} has no {key} request")
            if "memory" not in res.get("limits", {}):
                problems.append(f"{where}: container {c['name']} has no memory limit")
        if fg in spec.get("initContainers", []) and fg.get("restartPolicy") != "Always":
            problems.append(f"{where}: flexgate init container is not a sidecar (restartPolicy: Always)")

        cfg = flexgate_config_for(pod, fg, where, problems)
        if cfg is None:
            continue
        listen, admin = listen_port(cfg), listen_port(cfg, "admin_listen")
        health_port = admin or listen

        for probe_name, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            probe = fg.get(probe_name)
            if not probe:
                problems.append(f"{where}: flexgate has no {probe_name}")
                continue
            if probe.get("httpGet", {}).get("path") != path:
                problems.append(f"{where}: flexgate {probe_name} does not GET {path}")
            port = probe_port(probe, fg)
            if port != health_port:
                problems.append(f"{where}: flexgate {probe_name} probes port {port}, "
                                f"but health is served on {health_port}")
        declared = {p["containerPort"] for p in fg.get("ports", [])}
        if health_port not in declared:
            problems.append(f"{where}: flexgate does not declare container port {health_port}")
        if cfg["server"].get("listen", "0.0.0.0:8080").startswith("0.0.0.0") and listen not in declared:
            problems.append(f"{where}: flexgate listens on {listen} for clients but does not declare it")

        sc = fg.get("securityContext", {})
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        uid = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True:
            problems.append(f"{where}: flexgate does not set runAsNonRoot: true")
        if uid == 0:
            problems.append(f"{where}: flexgate runs as uid 0")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: flexgate root filesystem is writable")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: flexgate allows privilege escalation")

        # Grace period: preStop sleep + drain_timeout + at least 5 s margin.
        drain = duration_seconds(cfg["server"].get("drain_timeout", "30s"))
        pre_stop = fg.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace < pre_stop + drain + 5:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} s "
                            f"+ server.drain_timeout {drain:g} s + 5 s margin")
        if grace > pre_stop + drain + 30:
            problems.append(f"{where}: terminationGracePeriodSeconds {grace} is far above preStop "
                            f"{pre_stop} s + server.drain_timeout {drain:g} s: keep them matched")

        ann = pod["metadata"].get("annotations", {})
        if ann.get("prometheus.io/scrape") == "true":
            if ann.get("prometheus.io/port") != str(health_port):
                problems.append(f"{where}: prometheus.io/port {ann.get('prometheus.io/port')} "
                                f"is not the metrics port {health_port}")
            if ann.get("prometheus.io/path", "/metrics") != "/metrics":
                problems.append(f"{where}: prometheus.io/path is not /metrics")
        else:
            problems.append(f"{where}: no prometheus.io/scrape annotation")

        # Secrets: the upstream key comes from a Secret, in the container that uses it.
        holder = fg if cfg.get("auth", {}).get("mode") == "managed" else None
        env_holders = [holder] if holder else [c for c in all_containers(spec) if not is_flexgate(c)]
        refs = [e for c in env_holders for e in c.get("env", [])
                if e.get("name") == "OPENAI_API_KEY" and "secretKeyRef" in e.get("valueFrom", {})]
        if not refs:
            problems.append(f"{where}: OPENAI_API_KEY does not come from a secretKeyRef "
                            f"({'flexgate, managed auth' if holder else 'application, passthrough auth'})")
        fg_env = {e["name"] for e in fg.get("env", [])}
        for k in cfg.get("auth", {}).get("keys", []):
            if "env" in k and k["env"] not in fg_env:
                problems.append(f"{where}: auth key {k.get('client')} reads env {k['env']}, "
                                "which the flexgate container does not set")

        # Sidecar: the application is pointed at the gateway on localhost.
        apps = [c for c in all_containers(spec) if not is_flexgate(c)]
        if apps:
            urls = {e.get("value") for c in apps for e in c.get("env", []) if "value" in e}
            want = {f"http://localhost:{listen}/v1"}
            prefix = flex_prefix(cfg)
            if prefix:
                want.add(f"http://localhost:{listen}{prefix}")
            for url in sorted(want - urls):
                problems.append(f"{where}: no application env points at {url}")
            base = [e.get("value") for c in apps for e in c.get("env", []) if e["name"] == "OPENAI_BASE_URL"]
            if base != [f"http://localhost:{listen}/v1"]:
                problems.append(f"{where}: OPENAI_BASE_URL is {base}, not http://localhost:{listen}/v1")
    expect(problems)


def check_k8s_selectors() -> None:
    """Services and PodDisruptionBudgets select the gateway pods; target ports exist."""
    problems = []
    templates = pod_templates()
    for path, doc in k8s_resources():
        kind = doc.get("kind")
        if kind == "Service":
            sel = doc["spec"].get("selector", {})
        elif kind == "PodDisruptionBudget":
            sel = doc["spec"].get("selector", {}).get("matchLabels", {})
        else:
            continue
        where = f"{rel(path)} {kind}/{doc['metadata']['name']}"
        matched = [(w, t) for w, t in templates
                   if sel and all(t["metadata"].get("labels", {}).get(k) == v for k, v in sel.items())]
        if len(matched) != 1:
            problems.append(f"{where}: selector {sel} matches {len(matched)} workloads, expected 1")
            continue
        if kind == "Service":
            pod = matched[0][1]
            names = {p.get("name") for c in all_containers(pod["spec"]) for p in c.get("ports", [])}
            numbers = {p["containerPort"] for c in all_containers(pod["spec"]) for p in c.get("ports", [])}
            for p in doc["spec"].get("ports", []):
                tp = p.get("targetPort", p.get("port"))
                if tp not in names and tp not in numbers:
                    problems.append(f"{where}: targetPort {tp!r} is not a port of {matched[0][0]}")
    for w, t in templates:
        for c in all_containers(t["spec"]):
            for p in c.get("ports", []):
                if "name" in p and len(p["name"]) > 15:
                    problems.append(f"{w}: port name {p['name']} is longer than 15 characters")
    expect(problems)


# ---------------------------------------------------------------------------------
# Compose
# ---------------------------------------------------------------------------------

COMPOSE = ROOT / "deploy/compose.yaml"


def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def check_compose_schema() -> None:
    exe = Path(sys.executable).parent / "check-jsonschema"
    r = subprocess.run([str(exe), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise CheckFailed((r.stdout + r.stderr).strip().splitlines())


def compose_mounts(svc: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            source, target = parts[0], parts[1] if len(parts) > 1 else parts[0]
        else:
            source, target = v.get("source", ""), v.get("target", "")
            if v.get("type", "volume") != "bind":
                continue
        if source.startswith((".", "/")):
            out.append((source, target))
    return out


def compose_config_file(svc: dict[str, Any]) -> Path | None:
    for source, target in compose_mounts(svc):
        if target == "/etc/flexgate/flexgate.toml":
            return (COMPOSE.parent / source).resolve()
    return None


def check_compose_references() -> None:
    """Mounted files, build context, images, dependencies and addresses all line up."""
    c = compose()
    services = c.get("services", {})
    problems = []
    base = COMPOSE.parent
    for name, svc in services.items():
        for source, target in compose_mounts(svc):
            if not (base / source).exists():
                problems.append(f"service {name}: mounted {source} does not exist")
        build = svc.get("build")
        if build:
            ctx = base / (build if isinstance(build, str) else build.get("context", "."))
            df = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if not df.exists():
                problems.append(f"service {name}: build file {rel(df)} does not exist")
        image = svc.get("image", "")
        if not build and (":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")):
            problems.append(f"service {name}: image {image!r} is not pinned to a version tag")
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"service {name}: depends_on unknown service {dep}")
            elif isinstance(deps, dict) and deps[dep].get("condition") == "service_healthy":
                dep_svc = services[dep]
                if "healthcheck" not in dep_svc and not dep_svc.get("build") and "flexgate" not in dep_svc.get("image", ""):
                    problems.append(f"service {name}: waits for {dep} to be healthy, which has no healthcheck")
    for name in ("flexgate", "sim", "prometheus", "grafana"):
        if name not in services:
            problems.append(f"no service {name}")
    expect(problems)

    fg, sim = services["flexgate"], services["sim"]
    cfg_path = compose_config_file(fg)
    if cfg_path is None:
        raise CheckFailed("service flexgate: no config mounted at /etc/flexgate/flexgate.toml")
    cfg = tomllib.loads(cfg_path.read_text())
    problems += config_problems(cfg, rel(cfg_path))
    drain = duration_seconds(cfg.get("server", {}).get("drain_timeout", "30s"))
    grace = duration_seconds(str(fg.get("stop_grace_period", "10s")))
    if grace < drain + 5:
        problems.append(f"service flexgate: stop_grace_period {grace:g} s < server.drain_timeout "
                        f"{drain:g} s + 5 s margin")

    # flexgate -> sim
    cmd = sim.get("command", [])
    cmd = cmd.split() if isinstance(cmd, str) else cmd
    if not cmd or cmd[0] != "sim" or "--listen" not in cmd:
        problems.append("service sim does not run `sim --listen ADDR`")
    else:
        sim_port = int(cmd[cmd.index("--listen") + 1].rsplit(":", 1)[1])
        env = fg.get("environment", {})
        env = dict(e.split("=", 1) for e in env) if isinstance(env, list) else env
        for where, url in (("FLEXGATE_UPSTREAM_URL", env.get("FLEXGATE_UPSTREAM_URL")),
                           (f"{rel(cfg_path)} upstream.base_url", cfg.get("upstream", {}).get("base_url"))):
            u = urlparse(url or "")
            if (u.hostname, u.port, u.path) != ("sim", sim_port, "/v1"):
                problems.append(f"{where} is {url!r}, not http://sim:{sim_port}/v1")
        if "OPENAI_API_KEY" not in env:
            problems.append("service flexgate has no OPENAI_API_KEY")

    # prometheus -> flexgate
    prom = services["prometheus"]
    prom_cfg = next(((base / s).resolve() for s, t in compose_mounts(prom)
                     if t == "/etc/prometheus/prometheus.yml"), None)
    if prom_cfg is None:
        problems.append("service prometheus: no prometheus.yml mounted")
    else:
        pc = yaml.safe_load(prom_cfg.read_text())
        port = listen_port(cfg, "admin_listen") or listen_port(cfg)
        targets = [t for j in pc.get("scrape_configs", []) if j.get("job_name") == "flexgate"
                   for s in j.get("static_configs", []) for t in s.get("targets", [])]
        if f"flexgate:{port}" not in targets:
            problems.append(f"{rel(prom_cfg)}: job flexgate does not scrape flexgate:{port}")
        mounted = [t for s, t in compose_mounts(prom)]
        for pattern in pc.get("rule_files", []):
            full = os.path.normpath(os.path.join("/etc/prometheus", pattern))
            if not any(full.startswith(t.rstrip("/") + "/") for t in mounted):
                problems.append(f"{rel(prom_cfg)}: rule_files {pattern} is not mounted in the container")

    # grafana -> prometheus, dashboards
    graf = services["grafana"]
    mounts = dict((t, (base / s).resolve()) for s, t in compose_mounts(graf))
    ds_dir = mounts.get("/etc/grafana/provisioning/datasources")
    db_dir = mounts.get("/etc/grafana/provisioning/dashboards")
    if ds_dir is None or db_dir is None:
        problems.append("service grafana: provisioning folders are not mounted")
    else:
        for f in ds_dir.glob("*.y*ml"):
            for ds in yaml.safe_load(f.read_text()).get("datasources", []):
                u = urlparse(ds.get("url", ""))
                if ds.get("type") == "prometheus" and (u.hostname, u.port) != ("prometheus", 9090):
                    problems.append(f"{rel(f)}: datasource url {ds.get('url')} is not http://prometheus:9090")
        for f in db_dir.glob("*.y*ml"):
            for prov in yaml.safe_load(f.read_text()).get("providers", []):
                path = prov.get("options", {}).get("path")
                if path not in mounts:
                    problems.append(f"{rel(f)}: provider path {path} is not a mounted folder")
                elif not list(mounts[path].glob("*.json")):
                    problems.append(f"{rel(f)}: provider path {path} holds no dashboard JSON")
        home = graf.get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        if home:
            d, _, name = home.rpartition("/")
            if d not in mounts or not (mounts[d] / name).exists():
                problems.append(f"grafana home dashboard {home} is not a mounted file")
    expect(problems)


# ---------------------------------------------------------------------------------
# Grafana dashboard
# ---------------------------------------------------------------------------------

def check_dashboard_json() -> None:
    files = dashboard_files()
    if not files:
        raise CheckFailed("no dashboard JSON in deploy/grafana/dashboards")
    problems = []
    for path in files:
        try:
            dash = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            problems.append(f"{rel(path)}: {e}")
            continue
        for key in ("title", "uid", "schemaVersion", "panels"):
            if key not in dash:
                problems.append(f"{rel(path)}: no {key}")
        variables = {v.get("name") for v in dash.get("templating", {}).get("list", [])}
        ids = []
        for p in dashboard_panels(dash):
            name = f"{rel(path)} panel {p.get('title')!r}"
            ids.append(p.get("id"))
            gp = p.get("gridPos", {})
            if not all(k in gp for k in ("x", "y", "w", "h")) or gp["x"] + gp["w"] > 24:
                problems.append(f"{name}: bad gridPos {gp}")
            if p.get("type") == "row":
                continue
            ds = p.get("datasource")
            if not isinstance(ds, dict) or not ds.get("uid"):
                problems.append(f"{name}: no datasource")
            else:
                m = re.fullmatch(r"\$\{?(\w+)\}?", ds["uid"])
                if m and m.group(1) not in variables:
                    problems.append(f"{name}: datasource variable {ds['uid']} is not defined")
            targets = p.get("targets", [])
            if not targets or not all(t.get("expr", "").strip() for t in targets):
                problems.append(f"{name}: no query, or an empty one")
            refs = [t.get("refId") for t in targets]
            if len(refs) != len(set(refs)):
                problems.append(f"{name}: duplicate refIds {refs}")
        if len(ids) != len(set(ids)):
            problems.append(f"{rel(path)}: duplicate panel ids")
    expect(problems)


def check_dashboard_coverage() -> None:
    """The panels tracker issue 5 asks for are there."""
    text = "\n".join(e for _, e in dashboard_queries())
    wanted = {
        "spend over time": r"rate\(flexgate_cost_usd_total",
        "spend by model": r"sum by \(model\) \(rate\(flexgate_cost_usd_total",
        "savings over time by model": r"sum by \(model\) \(rate\(flexgate_savings_usd_total",
        "requests by class and served tier": r"sum by \(class, tier\) \(rate\(flexgate_requests_total",
        "latency p50 by class": r"histogram_quantile\(0\.5, sum by \(le, class\) \(rate\(flexgate_request_duration_seconds_bucket",
        "latency p95 by class": r"histogram_quantile\(0\.95, sum by \(le, class\) \(rate\(flexgate_request_duration_seconds_bucket",
        "latency p99 by class": r"histogram_quantile\(0\.99, sum by \(le, class\) \(rate\(flexgate_request_duration_seconds_bucket",
        "time to first byte": r"flexgate_time_to_first_byte_seconds_bucket",
        "escalations": r"flexgate_escalations_total",
        "429s by kind": r"sum by \(result\) \(rate\(flexgate_upstream_attempts_total\{[^}]*flex_capacity\|rate_limit\|billing",
        "in-flight": r"flexgate_inflight_requests",
        "overhead": r"flexgate_overhead_seconds_bucket",
    }
    expect([f"no panel for {k}" for k, pat in wanted.items() if not re.search(pat, text)])


def promtool_parse(exprs: list[tuple[str, str]]) -> list[str]:
    """Parse PromQL with promtool, as recording rules in a temporary rule file."""
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "parse", "rules": rules}]}, f)
    try:
        r = subprocess.run([PROMTOOL, "check", "rules", f.name], capture_output=True, text=True)
    finally:
        os.unlink(f.name)
    if r.returncode == 0:
        return []
    out = (r.stdout + r.stderr).strip().splitlines()
    problems = []
    for line in out:
        m = re.search(r"check:expr_(\d+)", line) or re.search(r"group \d+, rule (\d+)", line)
        if m:
            where, expr = exprs[int(m.group(1)) - (1 if "rule" in m.group(0) else 0)]
            problems.append(f"{where}: {expr}: {line.strip()}")
    return problems or out


def check_dashboard_promql() -> None:
    queries = [(w, grafana_to_promql(e)) for w, e in dashboard_queries()]
    panels = [(w, e) for w, e in queries if not e.startswith("label_values(")]
    problems = promtool_parse(panels)
    for w, e in queries:
        problems += promql_problems(e, w)
    expect(problems)


# ---------------------------------------------------------------------------------
# Alert rules: contents and test coverage
# ---------------------------------------------------------------------------------

REQUIRED_ALERTS = {
    "FlexgateEscalationRateHigh", "FlexgateFlexCapacity429RatioHigh", "FlexgateDeadlineMisses",
    "FlexgateBilling429", "FlexgateCostBurnOverBudget", "FlexgateDown",
}


def check_rules_content() -> None:
    problems = []
    alerts = {r["alert"]: r for r in all_rules() if "alert" in r}
    for name in sorted(REQUIRED_ALERTS - set(alerts)):
        problems.append(f"alert {name} is missing")
    for name, r in alerts.items():
        if r.get("labels", {}).get("severity") not in {"critical", "warning", "info"}:
            problems.append(f"{name}: severity label is not critical, warning or info")
        for key in ("summary", "description"):
            if not r.get("annotations", {}).get(key):
                problems.append(f"{name}: no {key} annotation")
    records = {r["record"]: r for r in all_rules() if "record" in r}
    budget = records.get("flexgate:cost_budget_usd:per_day")
    if budget is None or not re.fullmatch(r"vector\(\s*[0-9.]+\s*\)", budget["expr"].strip()):
        problems.append("the cost budget is not a recording rule flexgate:cost_budget_usd:per_day = vector(N)")
    elif "flexgate:cost_budget_usd:per_day" not in alerts.get("FlexgateCostBurnOverBudget", {}).get("expr", ""):
        problems.append("FlexgateCostBurnOverBudget does not compare against the budget rule")
    for r in all_rules():
        where = f"rule {r.get('alert') or r.get('record')}"
        problems += promql_problems(r["expr"], where)
        if "record" in r and not re.fullmatch(r"[a-z_]+:[a-z0-9_]+:[a-z0-9_]+", r["record"]):
            problems.append(f"{where}: recording rule name is not level:metric:operations")
    expect(problems)


def check_rule_test_coverage() -> None:
    """Every alert is tested firing and not firing; every recording rule is evaluated."""
    firing: set[str] = set()
    quiet: set[str] = set()
    exprs: list[str] = []
    series: list[tuple[str, str]] = []
    for path in rule_test_files():
        doc = yaml.safe_load(path.read_text())
        for t in doc.get("tests", []):
            for s in t.get("input_series", []):
                series.append((f"{path.name} test {t.get('name')!r}", s["series"]))
            for a in t.get("alert_rule_test", []):
                (firing if a.get("exp_alerts") else quiet).add(a["alertname"])
            exprs += [e["expr"] for e in t.get("promql_expr_test", [])]
    problems = []
    for r in all_rules():
        if "alert" in r:
            if r["alert"] not in firing:
                problems.append(f"alert {r['alert']} is never tested firing")
            if r["alert"] not in quiet:
                problems.append(f"alert {r['alert']} is never tested not firing")
        elif not any(r["record"] in e for e in exprs):
            problems.append(f"recording rule {r['record']} is never evaluated in a promql_expr_test")
    for where, s in series:
        problems += promql_problems(s, where)
    expect(problems)


def check_kubernetes_prometheus_config() -> None:
    """promtool check config on prometheus-kubernetes.yml, with its kubernetes_sd_configs
    replaced by static_configs: Debian's promtool is built without Kubernetes discovery.
    Everything else (relabelling, rule files) is checked as written."""
    src = ROOT / "deploy/prometheus/prometheus-kubernetes.yml"
    cfg = yaml.safe_load(src.read_text())
    sd = 0
    for job in cfg.get("scrape_configs", []):
        if "kubernetes_sd_configs" in job:
            sd += 1
            for s in job["kubernetes_sd_configs"]:
                if s.get("role") not in {"pod", "service", "endpoints", "endpointslice", "node", "ingress"}:
                    raise CheckFailed(f"job {job['job_name']}: unknown kubernetes_sd role {s.get('role')}")
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["placeholder:9090"]}]
    if not sd:
        raise CheckFailed("no kubernetes_sd_configs in prometheus-kubernetes.yml")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / src.name
        out.write_text(yaml.safe_dump(cfg))
        (Path(tmp) / "rules").symlink_to(ROOT / "deploy/prometheus/rules")
        r = subprocess.run([PROMTOOL, "check", "config", str(out)], capture_output=True, text=True)
    if r.returncode != 0:
        raise CheckFailed((r.stdout + r.stderr).strip().splitlines())


# ---------------------------------------------------------------------------------
# Metric names: the static contract, and the live-scrape tool
# ---------------------------------------------------------------------------------

def check_metric_names_tool() -> None:
    """metric_names.sh accepts a scrape with every contract metric, rejects one without."""
    tool = ROOT / "tests/deploy/metric_names.sh"
    lines = []
    for name, (kind, labels) in METRICS.items():
        lines.append(f"# HELP {name} test\n# TYPE {name} {kind}")
        lbl = ",".join(f'{l}="x"' for l in sorted(labels))
        if kind == "histogram":
            lines.append(f'{name}_bucket{{{lbl},le="+Inf"}} 1\n{name}_sum{{{lbl}}} 1\n{name}_count{{{lbl}}} 1')
        else:
            lines.append(f"{name}{{{lbl}}} 1")
    full = "\n".join(lines) + "\n"
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        good = Path(tmp) / "good.prom"
        good.write_text(full)
        r = subprocess.run(["bash", str(tool), str(good)], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"rejects a scrape with every metric: {r.stdout}{r.stderr}".strip())
        bad = Path(tmp) / "bad.prom"
        bad.write_text("\n".join(l for l in full.splitlines()
                                 if "flexgate_escalations_total" not in l
                                 and "flexgate_request_duration_seconds" not in l) + "\n")
        r = subprocess.run(["bash", str(tool), str(bad)], capture_output=True, text=True)
        if r.returncode == 0:
            problems.append("accepts a scrape without flexgate_escalations_total")
        for name in ("flexgate_escalations_total", "flexgate_request_duration_seconds"):
            if name not in r.stdout + r.stderr:
                problems.append(f"does not name the missing {name}")
    expect(problems)


# ---------------------------------------------------------------------------------
# Config files, and the binary's own check-config when a binary is at hand
# ---------------------------------------------------------------------------------

def deploy_configs() -> list[tuple[str, str]]:
    """(name, TOML text) of every flexgate config the deployment files ship or use."""
    out = []
    for name, (path, _) in configmap_configs().items():
        doc = next(d for p, d in k8s_resources() if p == path and d["metadata"]["name"] == name)
        out.append((f"{rel(path)} ConfigMap/{name}", doc["data"]["flexgate.toml"]))
    for p in sorted((ROOT / "deploy").rglob("*.toml")):
        out.append((rel(p), p.read_text()))
    image_cfg = ROOT / "config/flexgate.toml"
    if image_cfg.exists():
        out.append((rel(image_cfg), image_cfg.read_text()))
    return out


def check_config_shapes() -> None:
    problems = []
    for name, text in deploy_configs():
        try:
            problems += config_problems(tomllib.loads(text), name)
        except tomllib.TOMLDecodeError as e:
            problems.append(f"{name}: {e}")
    expect(problems)


def check_configs_with_binary() -> None:
    binary = flexgate_binary()
    if binary is None:
        raise Skip("no built flexgate binary under target/ to run check-config with")
    env = dict(os.environ, OPENAI_API_KEY="sk-check", FLEXGATE_CLIENT_KEY_TEAM_A="check")
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, text) in enumerate(deploy_configs()):
            f = Path(tmp) / f"config-{i}.toml"
            f.write_text(text)
            r = subprocess.run([str(binary), "check-config", str(f)], capture_output=True, text=True, env=env)
            if r.returncode != 0:
                problems.append(f"{name}: {rel(binary)} check-config failed:")
                problems += [f"  {l}" for l in (r.stdout + r.stderr).strip().splitlines()]
    expect(problems)


# ---------------------------------------------------------------------------------

def main() -> int:
    check("Dockerfile: multi-stage, distroless or slim runtime", check_dockerfile_structure)
    check(f"Dockerfile: every cargo build is exactly `{RELEASE_BUILD}`", check_dockerfile_build_command)
    check("Dockerfile: dependencies build in a layer before the sources are copied", check_dockerfile_dependency_layer)
    check("Dockerfile: non-root USER, HEALTHCHECK via `flexgate healthcheck`, EXPOSE, OCI labels, config path",
          check_dockerfile_runtime)
    check("Dockerfile: COPY sources exist and are in the build context", check_dockerfile_sources_exist)
    check(".dockerignore: target/ and .git/ out, build inputs in", check_dockerignore)
    check("Dockerfile: dependency stub resolves today's manifest with --locked", check_dependency_stub)
    check("CI runs the Dockerfile's release build command", check_ci_runs_release_build)
    check("built binary needs only libraries the distroless cc image has", check_binary_libs)

    for path, doc in k8s_resources():
        name = f"{rel(path)} {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        if is_crd(doc):
            check(f"kubernetes: {name}: CRD, structural check (no schema in kubernetes-validate)",
                  check_podmonitor(path, doc))
        else:
            check(f"kubernetes {K8S_VERSION} schema (strict): {name}", check_k8s_schema(path, doc))
    check("kubernetes: ConfigMap configs use only known keys", check_k8s_configmaps)
    check("kubernetes: probes, resources, non-root, grace period = drain, scrape annotations, secrets, sidecar URLs",
          check_k8s_workloads)
    check("kubernetes: Service and PDB selectors match the gateway pods", check_k8s_selectors)

    check("compose: valid against the compose specification", check_compose_schema)
    check("compose: mounted files exist; sim, prometheus and grafana addresses line up", check_compose_references)

    check("grafana: dashboard JSON parses; every panel has a datasource and a query", check_dashboard_json)
    check("grafana: dashboard has the panels of tracker issue 5", check_dashboard_coverage)
    check("grafana: dashboard PromQL parses (promtool) and uses contract metrics, labels and values",
          check_dashboard_promql)

    check("prometheus: prometheus-kubernetes.yml passes promtool check config (SD stubbed)",
          check_kubernetes_prometheus_config)
    check("prometheus: required alerts, severity and annotations, budget rule, contract metrics",
          check_rules_content)
    check("prometheus: every alert tested firing and not firing, every recording rule evaluated",
          check_rule_test_coverage)

    check("metric_names.sh accepts a full scrape and names what a partial one lacks", check_metric_names_tool)
    check("flexgate configs (ConfigMaps, compose, config/flexgate.toml) use only known keys",
          check_config_shapes)
    check("flexgate check-config accepts every shipped config", check_configs_with_binary)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())

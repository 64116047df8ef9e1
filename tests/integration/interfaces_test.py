#!/usr/bin/env python3
"""The operator-facing interfaces, checked against a running scuttled (issue: interfaces
proven). Cases:

  openapi   docs/openapi.yaml: every documented operation answers as documented (status
            and JSON schema), every route of the server's own table (GET /v1/debug/routes)
            is documented, and a known path with another method answers 405 + Allow
  promtool  `promtool check metrics` (Debian package prometheus) on a live /metrics
  grafana   every metric deploy/grafana/scuttle-dashboard.json queries exists in /metrics
  deploy    yamllint + a required-fields check of deploy/k8s, every --flag in deploy/ is
            a scuttled flag, probe paths are served routes, `systemd-analyze verify` of
            deploy/scuttled.service, and the Dockerfile's static checks

A missing checker (yaml, jsonschema, promtool, yamllint, systemd-analyze) skips the case
(exit 77) with a message naming the Debian package; tools/deps.sh installs them in CI.
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

import harness as h

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OPENAPI = os.path.join(ROOT, "docs", "openapi.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "scuttle-dashboard.json")
METHODS = ("get", "put", "post", "patch", "delete")


def need_module(name, package):
    try:
        return __import__(name)
    except ImportError:
        raise h.SkipTest("python module %s missing (Debian package %s; tools/deps.sh)"
                         % (name, package))


def need_tool(name, package):
    path = shutil.which(name)
    if path is None:
        raise h.SkipTest("%s not found (Debian package %s; tools/deps.sh)" % (name, package))
    return path


def raw_request(node, method, path, body=None, headers=None, stream=False):
    """(status, headers dict lower-cased, body bytes); stream: read only the first event."""
    conn = http.client.HTTPConnection("127.0.0.1", node.admin_port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if stream:
            data = b""
            while b"\n\n" not in data.split(b"\n", 1)[-1] and len(data) < 65536:
                chunk = r.read1(4096)
                if not chunk:
                    break
                data += chunk
        else:
            data = r.read()
        return r.status, hdrs, data
    finally:
        conn.close()


# ---- openapi ------------------------------------------------------------------------------

def resolve(doc, node):
    """Inlines local $refs (the document has no recursive schemas)."""
    if isinstance(node, dict):
        if "$ref" in node:
            target = doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part]
            return resolve(doc, target)
        return {k: resolve(doc, v) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(doc, v) for v in node]
    return node


def to_json_schema(s):
    """OpenAPI 3.0 schema objects are JSON Schema but for a few keywords."""
    if isinstance(s, dict):
        out = {k: to_json_schema(v) for k, v in s.items() if k not in ("example", "format")}
        if out.pop("nullable", False) and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(s, list):
        return [to_json_schema(v) for v in s]
    return s


def path_regex(template):
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^?]+", re.escape(template)) + "$")


def doc_path_for(paths, pattern):
    """The documented path template a served httplib pattern (literal or regex) serves."""
    served = re.compile("^" + pattern + "$")
    for template in paths:
        sample = re.sub(r"\{[^}]+\}", "x", template)
        if served.match(sample) and path_regex(template).match(sample):
            return template
    return None


def build_request(op, path_item, template):
    params = list(path_item.get("parameters", [])) + list(op.get("parameters", []))
    path, query = template, {}
    for p in params:
        if "example" not in p:
            continue
        if p["in"] == "path":
            path = path.replace("{%s}" % p["name"], urllib.parse.quote(str(p["example"]),
                                                                        safe=""))
        elif p["in"] == "query":
            query[p["name"]] = str(p["example"])
    h.check("{" not in path, "%s: a path parameter has no example" % template)
    if query:
        path += "?" + urllib.parse.urlencode(query)
    body, headers = None, {}
    rb = op.get("requestBody")
    if rb:
        ctype, media = next(iter(rb["content"].items()))
        h.check("example" in media, "%s: requestBody without example" % template)
        ex = media["example"]
        body = json.dumps(ex).encode() if ctype == "application/json" else str(ex).encode()
        headers["Content-Type"] = ctype
    return path, body, headers


def case_openapi(c, args):
    yaml = need_module("yaml", "python3-yaml")
    jsonschema = need_module("jsonschema", "python3-jsonschema")
    with open(OPENAPI) as f:
        doc = yaml.safe_load(f)
    h.check(str(doc.get("openapi", "")).startswith("3."), "not an OpenAPI 3 document")
    paths = doc["paths"]
    n = c.add("n00")
    c.add("n01", seeds=[n])
    c.wait_members(timeout=20)

    st, table = n.request("GET", "/v1/debug/routes")
    h.check(st == 200, "/v1/debug/routes answered %s" % st)
    routes = table["routes"]
    h.check(len(routes) > 0, "empty route table")
    served = {}  # template -> set of methods with a handler
    for r in routes:
        template = doc_path_for(paths, r["pattern"])
        if r["kind"] == "error":
            h.check(template is not None or r["pattern"].rstrip("/") + "/{key}" in paths
                    or any(t.startswith(r["pattern"]) for t in paths),
                    "error route %s %s belongs to no documented path" % (r["method"],
                                                                          r["pattern"]))
            continue
        h.check(template is not None, "served route %s %s is not in docs/openapi.yaml"
                % (r["method"], r["pattern"]))
        if r["kind"] == "handler":
            h.check(r["method"].lower() in paths[template],
                    "served %s %s is not documented under %s" % (r["method"], r["pattern"],
                                                                  template))
            served.setdefault(template, set()).add(r["method"])
    # Documented -> served, and each operation answers as documented. Writes first, so the
    # reads find the key; deletes last.
    order = {"put": 0, "patch": 1, "get": 2, "post": 3, "delete": 4}
    ops = [(t, m) for t in paths for m in paths[t] if m in METHODS]
    ops.sort(key=lambda tm: (order[tm[1]], tm[0]))
    for template, method in ops:
        h.check(method.upper() in served.get(template, set()),
                "documented %s %s is not in the server's route table" % (method.upper(),
                                                                          template))
        op = resolve(doc, paths[template][method])
        path, body, headers = build_request(op, resolve(doc, paths[template]), template)
        stream = "text/event-stream" in json.dumps(op["responses"])
        st, hdrs, data = raw_request(n, method.upper(), path, body, headers, stream=stream)
        h.log("%s %s -> %d (%d bytes)" % (method.upper(), path, st, len(data)))
        h.check(str(st) in op["responses"], "%s %s answered %d, documented %s"
                % (method.upper(), path, st, sorted(op["responses"])))
        h.check(200 <= st < 300, "%s %s with the documented example answered %d: %r"
                % (method.upper(), path, st, data[:300]))
        content = op["responses"][str(st)].get("content", {})
        ctype = hdrs.get("content-type", "").split(";")[0].strip()
        h.check(ctype in content, "%s %s: Content-Type %r, documented %s"
                % (method.upper(), path, ctype, sorted(content)))
        schema = content[ctype].get("schema")
        if ctype == "application/json" and schema is not None:
            try:
                jsonschema.validate(json.loads(data), to_json_schema(schema))
            except jsonschema.ValidationError as e:
                raise AssertionError("%s %s: body does not match the schema: %s"
                                     % (method.upper(), path, e.message))
    # Known path, undocumented method: 405 with Allow = the documented methods.
    for r in routes:
        if r["kind"] != "method_not_allowed":
            continue
        template = doc_path_for(paths, r["pattern"])
        h.check(r["method"].lower() not in paths[template],
                "%s %s is documented but served as 405" % (r["method"], template))
        path = re.sub(r"\{[^}]+\}", "x", template)
        st, hdrs, _ = raw_request(n, r["method"], path, b"" if r["method"] != "GET" else None)
        want = {m.upper() for m in paths[template] if m in METHODS}
        got = {m.strip() for m in hdrs.get("allow", "").split(",") if m.strip()}
        h.check(st == 405 and got == want, "%s %s: %d Allow=%r, want 405 Allow=%r"
                % (r["method"], path, st, sorted(got), sorted(want)))


# ---- metrics --------------------------------------------------------------------------------

def live_metrics(c):
    nodes = c.start_many(2)
    c.wait_members(timeout=20)
    nodes[0].put("metrics/k", "v")
    c.wait_value(nodes[0], "metrics/k", "v", nodes=nodes)
    st, _, data = raw_request(nodes[1], "GET", "/metrics")
    h.check(st == 200, "/metrics answered %d" % st)
    return data.decode()


def case_promtool(c, args):
    promtool = need_tool("promtool", "prometheus")
    text = live_metrics(c)
    p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    h.log("promtool check metrics: exit %d %s%s" % (p.returncode, p.stdout, p.stderr))
    h.check(p.returncode == 0, "promtool check metrics failed:\n%s%s" % (p.stdout, p.stderr))


def case_grafana(c, args):
    with open(DASHBOARD) as f:
        dash = json.load(f)
    text = live_metrics(c)
    samples = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    exprs = []

    def walk(x):
        if isinstance(x, dict):
            for k, v in x.items():
                if k in ("expr", "query") and isinstance(v, str):
                    exprs.append(v)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(dash)
    h.check(len(exprs) >= 5, "the dashboard has only %d queries" % len(exprs))
    used = set()
    for e in exprs:
        # Label matchers, strings and $variables are not metric names.
        bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\$\w+|\[[^\]]*\]", " ", e)
        for name in re.findall(r"\bscuttle_[a-zA-Z0-9_]+", bare):
            used.add(name)
    h.check(used, "no scuttle_ metric in the dashboard")
    missing = sorted(used - samples)
    h.log("dashboard uses %d metrics: %s" % (len(used), sorted(used)))
    h.check(not missing, "the dashboard uses metrics /metrics does not have: %s" % missing)


# ---- deploy ---------------------------------------------------------------------------------

K8S_REQUIRED = {
    "Service": [("spec", "ports")],
    "Secret": [("stringData",)],
    "DaemonSet": [("spec", "selector", "matchLabels"), ("spec", "template", "spec",
                                                        "containers")],
    "Deployment": [("spec", "selector", "matchLabels"), ("spec", "template", "spec",
                                                         "containers")],
}


def dig(obj, keys):
    for k in keys:
        if not isinstance(obj, dict) or k not in obj:
            return None
        obj = obj[k]
    return obj


def check_k8s(yaml, path, flags, served_paths):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    h.check(docs, "%s: no documents" % path)
    for d in docs:
        where = "%s: %s/%s" % (os.path.basename(path), d.get("kind"),
                               dig(d, ["metadata", "name"]))
        for field in ("apiVersion", "kind"):
            h.check(isinstance(d.get(field), str), "%s: no %s" % (where, field))
        h.check(isinstance(dig(d, ["metadata", "name"]), str), "%s: no metadata.name" % where)
        h.check(d["kind"] in K8S_REQUIRED, "%s: unexpected kind" % where)
        for keys in K8S_REQUIRED[d["kind"]]:
            h.check(dig(d, list(keys)) is not None, "%s: no %s" % (where, ".".join(keys)))
        if d["kind"] == "Secret":
            continue
        if d["kind"] == "Service":
            for p in d["spec"]["ports"]:
                h.check(isinstance(p.get("port"), int) and 0 < p["port"] < 65536,
                        "%s: bad port %r" % (where, p))
                h.check(p.get("protocol", "TCP") in ("TCP", "UDP", "SCTP"), where)
            continue
        labels = dig(d, ["spec", "template", "metadata", "labels"]) or {}
        for k, v in d["spec"]["selector"]["matchLabels"].items():
            h.check(labels.get(k) == v, "%s: selector %s=%s does not match the pod labels"
                    % (where, k, v))
        for ctr in d["spec"]["template"]["spec"]["containers"]:
            h.check(isinstance(ctr.get("name"), str) and isinstance(ctr.get("image"), str),
                    "%s: a container without name or image" % where)
            port_names = set()
            for p in ctr.get("ports", []):
                h.check(isinstance(p.get("containerPort"), int)
                        and 0 < p["containerPort"] < 65536, "%s: bad port %r" % (where, p))
                port_names.add(p.get("name"))
            for probe in ("livenessProbe", "readinessProbe"):
                get = dig(ctr, [probe, "httpGet"])
                if get is not None:
                    h.check(get.get("path") in served_paths, "%s: %s path %r is not served"
                            % (where, probe, get.get("path")))
                    h.check(get.get("port") in port_names or isinstance(get.get("port"), int),
                            "%s: %s port %r" % (where, probe, get.get("port")))
            if ctr["name"] == "scuttled":
                check_flags(where, ctr.get("args", []), flags)


def check_flags(where, words, flags):
    for w in words:
        m = re.match(r"--([a-z_0-9]+)(=|$)", w)
        if m:
            h.check(m.group(1) in flags, "%s: --%s is not a scuttled flag" % (where,
                                                                            m.group(1)))


def case_deploy(c, args):
    yaml = need_module("yaml", "python3-yaml")
    yamllint = need_tool("yamllint", "yamllint")
    analyze = need_tool("systemd-analyze", "systemd")
    n = c.add("n00")
    flags = set(n._ok("GET", "/v1/config")["config"])
    served_paths = {r["pattern"] for r in n._ok("GET", "/v1/debug/routes")["routes"]
                    if r["kind"] == "handler" and r["method"] == "GET"}

    k8s_dir = os.path.join(ROOT, "deploy", "k8s")
    manifests = sorted(os.path.join(k8s_dir, f) for f in os.listdir(k8s_dir)
                       if f.endswith((".yaml", ".yml")))
    h.check(manifests, "no manifests in deploy/k8s")
    p = subprocess.run([yamllint, "--strict", "-c", os.path.join(ROOT, ".yamllint"), OPENAPI]
                       + manifests, capture_output=True, text=True, timeout=60)
    h.check(p.returncode == 0, "yamllint:\n%s%s" % (p.stdout, p.stderr))
    for m in manifests:
        check_k8s(yaml, m, flags, served_paths)

    # systemd: the unit verified with ExecStart pointing at the binary under test (verify
    # refuses a unit whose executable does not exist).
    with open(os.path.join(ROOT, "deploy", "scuttled.service")) as f:
        unit = f.read()
    directives = "\n".join(ln for ln in unit.splitlines() if not ln.startswith("#"))
    check_flags("scuttled.service", re.findall(r"--[a-z_0-9]+=?", directives), flags)
    h.check("/usr/local/bin/scuttled " in unit, "ExecStart no longer runs /usr/local/bin/scuttled")
    tmp = tempfile.mkdtemp(prefix="scuttle-unit-")
    try:
        path = os.path.join(tmp, "scuttled.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/local/bin/scuttled ", args.bin + " "))
        p = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                           timeout=60)
        h.log("systemd-analyze verify: exit %d %s%s" % (p.returncode, p.stdout, p.stderr))
        # Without a running systemd (containers) verify still parses the unit and reports
        # unknown or malformed directives on stderr.
        bad = [ln for ln in (p.stdout + p.stderr).splitlines()
               if "scuttled.service" in ln]
        h.check(p.returncode == 0 and not bad, "systemd-analyze verify:\n%s%s"
                % (p.stdout, p.stderr))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Dockerfile: no engine runs here (deploy/README.md has the manual build check). Static:
    # both stages on Debian 12, every COPY source exists, the runtime stage is not root,
    # and every scuttled flag in it exists.
    with open(os.path.join(ROOT, "deploy", "Dockerfile")) as f:
        df = f.read()
    froms = re.findall(r"^FROM\s+(\S+)", df, re.M)
    h.check(froms and all(f.startswith("debian:bookworm") for f in froms),
            "Dockerfile stages: %r" % froms)
    h.check(re.search(r"^USER\s+(?!0\b|root\b)\S+", df, re.M), "Dockerfile runs as root")
    h.check("HEALTHCHECK" in df, "Dockerfile without HEALTHCHECK")
    cmd = re.findall(r"^CMD\s+\[(.*)\]", df, re.M)
    h.check(cmd, "Dockerfile without a CMD of default flags")
    check_flags("Dockerfile", json.loads("[%s]" % cmd[-1]), flags)
    for m in re.finditer(r"^COPY\s+(?!--from)(.+)$", df, re.M):
        srcs = m.group(1).split()[:-1]
        for s in srcs:
            h.check(os.path.exists(os.path.join(ROOT, s)), "Dockerfile COPY %s: missing" % s)
    for tool in re.findall(r"CMD \[\"(\w+)\"", df):
        h.check(tool in ("scuttlectl", "scuttled"), "HEALTHCHECK runs %s" % tool)


CASES = {"openapi": case_openapi, "promtool": case_promtool, "grafana": case_grafana,
         "deploy": case_deploy}


def main():
    ap = h.base_args(__doc__)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    args = ap.parse_args()
    args.bin = os.path.abspath(args.bin)
    return h.run(CASES[args.case], args)


if __name__ == "__main__":
    sys.exit(main())

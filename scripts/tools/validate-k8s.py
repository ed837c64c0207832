#!/usr/bin/env python3
"""Validates rendered Kubernetes objects against the Kubernetes OpenAPI schemas, offline.

  validate-k8s.py --openapi DIR [--crd FILE]... [--unchecked-group G]... [--restricted] MANIFEST...

DIR is Kubernetes' api/openapi-spec/v3 (from the k8s.io/kubernetes module of the version we
target: scripts/tools/k8s-openapi.sh prints it). Built-in kinds are checked against the schema
whose x-kubernetes-group-version-kind names them; custom resources against the openAPIV3Schema
of the CRDs given with --crd (and of CRDs found among the manifests). Checks: types, required
fields, enums, int-or-string, and unknown fields (strict, as `kubectl apply --validate=strict`
rejects them), except where the schema preserves unknown fields. An object of a kind with no
schema is an error unless its API group is named with --unchecked-group (then it is listed as
unchecked). --restricted also applies the Pod Security Standards "restricted" level to every pod
and pod template. Prints one line per problem as `FILE: Kind/name: path: message`; exit 0 when
there are none. Python standard library and PyYAML (Debian python3-yaml).
"""
import argparse
import glob
import json
import os
import re
import sys

import yaml


class Schemas:
    def __init__(self, openapi_dir):
        self.defs, self.by_gvk = {}, {}
        files = sorted(glob.glob(os.path.join(openapi_dir, "*.json")))
        if not files:
            raise SystemExit(f"validate-k8s: no OpenAPI files in {openapi_dir}")
        for f in files:
            with open(f) as fh:
                doc = json.load(fh)
            for name, s in doc.get("components", {}).get("schemas", {}).items():
                self.defs.setdefault(name, s)
                for gvk in s.get("x-kubernetes-group-version-kind", []):
                    key = (gvk.get("group", ""), gvk["version"], gvk["kind"])
                    self.by_gvk.setdefault(key, {"$ref": "#/components/schemas/" + name})

    def add_crd(self, crd):
        spec = crd.get("spec", {})
        for v in spec.get("versions", []):
            schema = v.get("schema", {}).get("openAPIV3Schema")
            if schema is not None and v.get("served", True):
                self.by_gvk[(spec["group"], v["name"], spec["names"]["kind"])] = {"crd": True, "schema": schema}

    def resolve(self, s):
        while isinstance(s, dict) and "$ref" in s:
            s = self.defs[s["$ref"].rsplit("/", 1)[-1]]
        return s


def type_ok(t, v):
    return {"object": isinstance(v, dict), "array": isinstance(v, list), "string": isinstance(v, str),
            "boolean": isinstance(v, bool),
            "integer": isinstance(v, int) and not isinstance(v, bool),
            "number": isinstance(v, (int, float)) and not isinstance(v, bool)}.get(t, True)


def validate(schemas, s, v, path, errors, crd):
    s = schemas.resolve(s)
    if not isinstance(s, dict):
        return
    if v is None:
        if not s.get("nullable"):
            # Kubernetes accepts null for optional fields and drops them; only a null where an
            # object is required would be odd, and `required` catches missing ones.
            pass
        return
    for sub in s.get("allOf", []):
        validate(schemas, sub, v, path, errors, crd)
    if "oneOf" in s or "anyOf" in s:
        alts = s.get("oneOf", []) + s.get("anyOf", [])
        if s.get("format") == "int-or-string" or s.get("x-kubernetes-int-or-string"):
            if not (isinstance(v, (int, str)) and not isinstance(v, bool)):
                errors.append(f"{path}: must be an integer or a string, not {json.dumps(v)}")
            elif isinstance(v, str) and "pattern" in s and not re.search(s["pattern"], v):
                errors.append(f"{path}: {json.dumps(v)} does not match {s['pattern']}")
            return
        if not any(not sub_errors(schemas, a, v, path, crd) for a in alts) and "type" not in s:
            errors.append(f"{path}: matches none of the allowed forms")
            return
    if s.get("x-kubernetes-int-or-string"):
        if not (isinstance(v, (int, str)) and not isinstance(v, bool)):
            errors.append(f"{path}: must be an integer or a string, not {json.dumps(v)}")
        return
    t = s.get("type")
    if t and not type_ok(t, v):
        errors.append(f"{path}: must be {t}, not {type(v).__name__} {json.dumps(v)[:60]}")
        return
    if "pattern" in s and isinstance(v, str) and not re.search(s["pattern"], v):
        errors.append(f"{path}: {json.dumps(v)} does not match {s['pattern']}")
    if "enum" in s and v not in s["enum"]:
        errors.append(f"{path}: {json.dumps(v)} is not one of {s['enum']}")
    if isinstance(v, dict):
        props = s.get("properties")
        addl = s.get("additionalProperties")
        for req in s.get("required", []):
            if req not in v:
                errors.append(f"{path}: missing required field {req}")
        preserve = s.get("x-kubernetes-preserve-unknown-fields")
        for k, item in v.items():
            p = f"{path}.{k}" if path else k
            if props and k in props:
                validate(schemas, props[k], item, p, errors, crd)
            elif isinstance(addl, dict):
                validate(schemas, addl, item, p, errors, crd)
            elif addl is True or preserve:
                continue
            elif props is not None or (crd and t == "object" and addl is None):
                errors.append(f"{p}: unknown field")
    if isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            validate(schemas, s["items"], item, f"{path}[{i}]", errors, crd)


def sub_errors(schemas, s, v, path, crd):
    e = []
    validate(schemas, s, v, path, e, crd)
    return e


def pod_specs(obj):
    """(path, pod spec, pod metadata) of a Pod or of a workload's pod template."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        yield "spec", spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield "spec.template.spec", (spec.get("template") or {}).get("spec") or {}
    elif kind == "CronJob":
        yield "spec.jobTemplate.spec.template.spec", ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template", {}).get("spec") or {}


ALLOWED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                   "projected", "secret", "name"}


def restricted(obj):
    """Problems under the Pod Security Standards' restricted level (v1.36)."""
    out = []
    for base, ps in pod_specs(obj):
        psc = ps.get("securityContext") or {}
        for f in ("hostNetwork", "hostPID", "hostIPC"):
            if ps.get(f):
                out.append(f"{base}.{f}: must not be true")
        for i, vol in enumerate(ps.get("volumes") or []):
            bad = set(vol) - ALLOWED_VOLUMES
            if bad:
                out.append(f"{base}.volumes[{i}]: volume type {sorted(bad)} is not allowed")
        containers = [("containers", c) for c in ps.get("containers") or []] + \
                     [("initContainers", c) for c in ps.get("initContainers") or []]
        pod_nonroot = psc.get("runAsNonRoot") is True
        pod_seccomp = (psc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Localhost")
        if psc.get("runAsUser") == 0:
            out.append(f"{base}.securityContext.runAsUser: must not be 0")
        for field, c in containers:
            p = f"{base}.{field}[{c.get('name')}].securityContext"
            sc = c.get("securityContext") or {}
            if sc.get("privileged"):
                out.append(f"{p}.privileged: must not be true")
            if sc.get("allowPrivilegeEscalation") is not False:
                out.append(f"{p}.allowPrivilegeEscalation: must be false")
            caps = sc.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                out.append(f"{p}.capabilities.drop: must include ALL")
            if set(caps.get("add") or []) - {"NET_BIND_SERVICE"}:
                out.append(f"{p}.capabilities.add: only NET_BIND_SERVICE is allowed")
            if sc.get("runAsNonRoot") is False or (not pod_nonroot and sc.get("runAsNonRoot") is not True):
                out.append(f"{p}.runAsNonRoot: must be true (here or in the pod's securityContext)")
            if sc.get("runAsUser") == 0:
                out.append(f"{p}.runAsUser: must not be 0")
            st = (sc.get("seccompProfile") or {}).get("type")
            if st is not None and st not in ("RuntimeDefault", "Localhost"):
                out.append(f"{p}.seccompProfile.type: must be RuntimeDefault or Localhost")
            if st is None and not pod_seccomp:
                out.append(f"{p}.seccompProfile: must be RuntimeDefault or Localhost (here or in the pod)")
            for port in c.get("ports") or []:
                if port.get("hostPort"):
                    out.append(f"{base}.{field}[{c.get('name')}].ports: hostPort is not allowed")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--openapi", required=True)
    ap.add_argument("--crd", action="append", default=[])
    ap.add_argument("--unchecked-group", action="append", default=[])
    ap.add_argument("--restricted", action="store_true")
    ap.add_argument("manifests", nargs="+")
    a = ap.parse_args()
    schemas = Schemas(a.openapi)
    docs = []
    for f in a.crd + a.manifests:
        with open(f) as fh:
            for d in yaml.safe_load_all(fh):
                if isinstance(d, dict):
                    docs.append((f, d))
                    if d.get("kind") == "CustomResourceDefinition":
                        schemas.add_crd(d)
    problems, checked, unchecked = [], 0, []
    for f, d in docs:
        if f in a.crd:
            continue
        av, kind = d.get("apiVersion", ""), d.get("kind", "")
        group, _, version = av.rpartition("/")
        name = (d.get("metadata") or {}).get("name", "?")
        where = f"{f}: {kind}/{name}"
        entry = schemas.by_gvk.get((group, version, kind))
        if entry is None:
            if group in a.unchecked_group:
                unchecked.append(f"{kind}/{name}")
                continue
            problems.append(f"{where}: no schema for {av} {kind}")
            continue
        errs = []
        if entry.get("crd"):
            body = {k: v for k, v in d.items() if k != "metadata"}
            validate(schemas, entry["schema"], body, "", errs, True)
            om = {"$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
            validate(schemas, om, d.get("metadata") or {}, "metadata", errs, False)
        else:
            validate(schemas, entry, d, "", errs, False)
        if a.restricted:
            errs += [f"pod security restricted: {e}" for e in restricted(d)]
        problems += [f"{where}: {e}" for e in errs]
        checked += 1
    for p in problems:
        print(p)
    print(f"validate-k8s: {checked} objects checked against the schemas, {len(problems)} problems"
          + (f"; unchecked (no schema offline): {', '.join(unchecked)}" if unchecked else ""), file=sys.stderr)
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main())

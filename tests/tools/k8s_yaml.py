#!/usr/bin/env python3
"""Test oracle: reads YAML the way Kubernetes does (go-yaml v2 rules through PyYAML: YAML 1.1
octal ints and yes/no/on/off booleans, timestamps kept as strings), independently of kubesnap's
own parser.

    k8s_yaml.py compare SRC DST [--desired]   every file under SRC has an equal file under DST
    k8s_yaml.py tojson FILE                    prints the documents of FILE as a JSON array

With --desired, the server-owned fields (format v1's list) are removed from SRC before comparing.
Exit 0 when equal; otherwise prints the differences and exits 1.
"""
import json
import os
import sys

import yaml

Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class Loader(Base):
    pass


Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in rs if tag != "tag:yaml.org,2002:timestamp"]
    for ch, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

SERVER_META = ["uid", "resourceVersion", "generation", "creationTimestamp", "managedFields", "selfLink"]


def load(path):
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.load_all(fh, Loader=Loader) if d is not None]


def desired(obj):
    obj = json.loads(json.dumps(obj))
    meta = obj.get("metadata") or {}
    for k in SERVER_META:
        meta.pop(k, None)
    obj.pop("status", None)
    return obj


def canon(v):
    return json.loads(json.dumps(v, sort_keys=True))


def compare(src, dst, only_desired):
    bad = 0
    count = 0
    for root, _, files in os.walk(src):
        for f in sorted(files):
            if not f.endswith((".yaml", ".yml")):
                continue
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)
            q = os.path.join(dst, rel)
            count += 1
            if not os.path.exists(q):
                print("missing: %s" % rel)
                bad += 1
                continue
            a = load(p)
            b = load(q)
            if only_desired:
                a = [desired(x) for x in a]
            if canon(a) != canon(b):
                bad += 1
                if bad <= 10:
                    print("differs: %s\n  want %s\n  got  %s" % (rel, json.dumps(canon(a))[:400], json.dumps(canon(b))[:400]))
    extra = 0
    for root, _, files in os.walk(dst):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), dst)
            if not os.path.exists(os.path.join(src, rel)):
                extra += 1
                if extra <= 10:
                    print("unexpected: %s" % rel)
    print("compared %d files: %d differ, %d unexpected" % (count, bad, extra))
    return bad == 0 and extra == 0


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "compare":
        ok = compare(sys.argv[2], sys.argv[3], "--desired" in sys.argv[4:])
        sys.exit(0 if ok else 1)
    if len(sys.argv) == 3 and sys.argv[1] == "tojson":
        print(json.dumps(load(sys.argv[2])))
        return
    print(__doc__, file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()

"""Observe zoo servers by hand: the ground truth tables of zoo.yaml.

    .venv/bin/python tests/zoo/verify.py [NAME ...] [--linger S] [--steps 1,2,4,8] [--out FILE]

For each server: a private internal network, the server in the lab's box
(zoo.start), then a client container from the same image, on that network
and in the server's PID namespace, running hold.py: K = 1, 2, 4, 8 held
connections with an incomplete request each, the server's processes and
threads at each K, and whether a complete request on a fresh connection was
answered within 2 s.  Prints one JSON line per server (and writes them to
--out).  Reads the probe's bytes from zoo.yaml without requiring its truth,
so a new entry can be observed before its truth is written.  Everything it
makes carries the lab's labels (LAB_NAME, default iolabzoo here) and is
removed at the end, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("LAB_NAME", "iolabzoo")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import yaml  # noqa: E402

import zoo  # noqa: E402
from lab.engine import LAB, OWNER, RUN, connect, me  # noqa: E402


def observe(engine, tag: str, network: str, labels: dict, entry: dict, args) -> dict:
    began = time.monotonic()
    unit = zoo.start(engine, entry["name"], tag, network, labels=labels, name=f"zoo-{entry['name']}-{os.getpid()}")
    started = time.monotonic() - began
    try:
        cmd = hold_cmd(entry, "--steps", args.steps, "--linger", str(args.linger))
        if args.work:
            cmd = hold_cmd(entry, "--work", str(args.work))
        client = engine.client.containers.run(
            tag, cmd, detach=True, network=network, pid_mode=f"container:{unit.id}", user="10001:10001",
            read_only=True, tmpfs={"/tmp": "size=16m"}, cap_drop=["ALL"],
            security_opt=["no-new-privileges:true"], labels=labels, name=f"zoo-hold-{entry['name']}-{os.getpid()}")
        try:
            code = client.wait(timeout=300)["StatusCode"]
            out = client.logs(stdout=True, stderr=False).decode()
            err = client.logs(stdout=False, stderr=True).decode()
        finally:
            client.remove(force=True)
        if code != 0:
            return {"name": entry["name"], "error": f"hold.py exited {code}: {err[-2000:]}"}
        doc = json.loads(out.strip().splitlines()[-1])
        doc["name"] = entry["name"]
        doc["started_s"] = round(started, 2)
        doc["server_log_tail"] = unit.logs(stdout=True, stderr=True, tail=8).decode(errors="replace")[-1500:]
        return doc
    finally:
        unit.remove()


def hold_cmd(entry: dict, *extra: str) -> list[str]:
    cmd = ["python3", "/usr/local/lib/zoo/hold.py", "--partial", entry["partial"], "--request", entry["request"],
           *extra]
    return [*cmd, "--banner"] if entry.get("banner") else cmd


def idle_all(engine, tag: str, network: str, labels: dict, entries: list[dict], args) -> list[dict]:
    """Every server at once (idle connections cost little), one watcher each."""
    units, clients, docs = {}, {}, []
    for e in entries:
        try:
            units[e["name"]] = zoo.start(engine, e["name"], tag, network, labels=labels,
                                         name=f"zoo-{e['name']}-{os.getpid()}")
        except Exception as exc:
            docs.append({"name": e["name"], "error": str(exc)})
    for e in entries:
        if e["name"] in units:
            clients[e["name"]] = engine.client.containers.run(
                tag, hold_cmd(e, "--idle", str(args.idle), "--host", f"zoo-{e['name']}-{os.getpid()}"),
                detach=True, network=network, user="10001:10001", read_only=True,
                cap_drop=["ALL"], security_opt=["no-new-privileges:true"], labels=labels)
    for name, client in clients.items():
        code = client.wait(timeout=args.idle + 120)["StatusCode"]
        out = client.logs(stdout=True, stderr=False).decode().strip()
        doc = json.loads(out.splitlines()[-1]) if code == 0 and out else {
            "error": client.logs(stderr=True).decode()[-1000:]}
        doc["name"] = name
        docs.append(doc)
    return docs


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*")
    p.add_argument("--steps", default="1,2,4,8")
    p.add_argument("--linger", type=float, default=0.0)
    p.add_argument("--out")
    p.add_argument("--partial", help="hold this instead of zoo.yaml's incomplete request "
                                      "(e.g. a complete slow request, to fill a pool's workers)")
    p.add_argument("--work", type=float, default=0.0,
                   help="instead: 8 clients load each server this many seconds; its threads' CPU ticks")
    p.add_argument("--idle", type=float, default=0.0,
                   help="instead: every server at once, how long until it closes a held incomplete "
                        "request and an idle connection after a reply (watched at most this long)")
    args = p.parse_args()
    raw = yaml.safe_load(zoo.ZOO_YAML.read_text())
    entries = {e["name"]: e for e in raw["servers"]}
    names = args.names or list(entries)
    if args.partial:
        for name in names:
            entries[name] = {**entries[name], "partial": args.partial}
    unknown = [n for n in names if n not in entries]
    if unknown:
        sys.exit(f"verify.py: not in zoo.yaml: {', '.join(unknown)}")
    engine = connect("local")
    from lab.run.images import Family
    family = Family(raw["family"]["name"], tuple(raw["family"]["packages"]))
    tag = zoo.image(engine, say=lambda s: print(s, file=sys.stderr), family=family)
    run = f"zoo-verify-{os.getpid()}"
    labels = {LAB: engine.lab, RUN: run, OWNER: me()}
    out = open(args.out, "a") if args.out else None
    try:
        net = engine.create_network(run, internal=True, labels=labels).name
        if args.idle:
            for doc in idle_all(engine, tag, net, labels, [entries[n] for n in names], args):
                print(json.dumps(doc), flush=True)
                if out:
                    out.write(json.dumps(doc) + "\n")
            return 0
        for name in names:
            try:
                doc = observe(engine, tag, net, labels, entries[name], args)
            except Exception as exc:  # one server failing says why and the rest go on
                doc = {"name": name, "error": f"{type(exc).__name__}: {exc}"}
            line = json.dumps(doc)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()
    finally:
        for res in engine.runs(run).values():
            engine.remove(res)
        if out:
            out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

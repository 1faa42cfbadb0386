#!/usr/bin/env python3
"""A local stand-in for the Hugging Face hub, for colony's download tests.

It speaks what huggingface_hub and colony read from huggingface.co:
  HEAD/GET /{owner}/{repo}/resolve/{rev}/{file}
      -> 302 to the storage server (another origin, as the real CDN is), with
         X-Linked-Etag: "<sha256>", X-Linked-Size, X-Repo-Commit, ETag;
         404 + X-Error-Code: EntryNotFound for a missing file, 401
         RepositoryNotFound for an unknown repo, 401/403 GatedRepo for a gated
         repo without the right Bearer token.
  GET /api/models/{owner}/{repo}[/revision/{rev}] -> {"id", "siblings": [{"rfilename"}]}
  GET {storage}/lfs/{sha256}?sig=... with Range: bytes=a-b / a- -> 206 + Content-Range.

Repos are folders: --root DIR holds DIR/{owner}/{repo}/{file}. Faults for the
tests: --cut-after N (the first storage GET sends N body bytes, then closes),
--corrupt-at OFFSET (that byte is flipped in every storage response),
--corrupt-ranges-at OFFSET (flipped in 206 answers to Range requests only),
--ignore-range (storage answers 200 with the whole file), --gated owner/repo
with --token T. Every request is logged as one JSON line to --log
({"server", "method", "path", "range", "auth", "status", "sent"}).
--ready FILE receives {"hub": URL, "storage": URL} once both listen.
"""
import argparse
import hashlib
import http.server
import json
import os
import socketserver
import sys
import threading
import urllib.parse

args = None
files_by_sha = {}
log_lock = threading.Lock()
cut_done = threading.Event()


def log(entry):
    with log_lock, open(args.log, "a") as f:
        f.write(json.dumps(entry) + "\n")


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Base(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_name = "?"

    def log_message(self, *a):
        pass

    def finish_log(self, status, sent):
        log({"server": self.server_name, "method": self.command, "path": self.path,
             "range": self.headers.get("Range"), "auth": self.headers.get("Authorization"),
             "status": status, "sent": sent})

    def reply(self, status, headers=None, body=b""):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.finish_log(status, len(body) if self.command != "HEAD" else 0)


class Hub(Base):
    server_name = "hub"

    def do_HEAD(self):
        self.route()

    def do_GET(self):
        self.route()

    def authorized(self, repo):
        if repo not in args.gated:
            return True
        return self.headers.get("Authorization") == "Bearer " + (args.token or "")

    def route(self):
        path = urllib.parse.unquote(urllib.parse.urlparse(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            return self.listing("/".join(parts[2:4]))
        if len(parts) >= 5 and parts[2] == "resolve":
            return self.resolve("/".join(parts[:2]), parts[3], "/".join(parts[4:]))
        self.reply(404, {"X-Error-Code": "EntryNotFound"}, b"not found")

    def listing(self, repo):
        d = os.path.join(args.root, repo)
        if not os.path.isdir(d) or not self.authorized(repo):
            return self.reply(401, {"X-Error-Code": "RepositoryNotFound"}, b"{}")
        names = sorted(os.path.relpath(os.path.join(dp, f), d)
                       for dp, _, fs in os.walk(d) for f in fs)
        body = json.dumps({"id": repo, "siblings": [{"rfilename": n} for n in names]}).encode()
        self.reply(200, {"Content-Type": "application/json"}, body)

    def resolve(self, repo, rev, file):
        d = os.path.join(args.root, repo)
        if not os.path.isdir(d):
            return self.reply(401, {"X-Error-Code": "RepositoryNotFound"}, b"Repository not found")
        if not self.authorized(repo):
            code = 403 if self.headers.get("Authorization") else 401
            return self.reply(code, {"X-Error-Code": "GatedRepo"}, b"Access to this repo is restricted")
        if rev != "main":
            return self.reply(404, {"X-Error-Code": "RevisionNotFound"}, b"Revision not found")
        p = os.path.join(d, file)
        if not os.path.isfile(p):
            return self.reply(404, {"X-Error-Code": "EntryNotFound"}, b"Entry not found")
        sha = sha256_of(p)
        files_by_sha[sha] = p
        loc = "%s/lfs/%s?sig=%s" % (args.storage_url, sha, hashlib.md5(sha.encode()).hexdigest())
        self.reply(302, {"Location": loc, "X-Linked-Etag": '"%s"' % sha,
                         "X-Linked-Size": str(os.path.getsize(p)),
                         "X-Repo-Commit": "0123456789abcdef0123456789abcdef01234567",
                         "ETag": 'W/"%s"' % hashlib.sha1(sha.encode()).hexdigest()},
                   b"Found. Redirecting")


class Storage(Base):
    server_name = "storage"

    def do_GET(self):
        path = urllib.parse.urlparse(self.path).path
        sha = path.rsplit("/", 1)[-1]
        p = files_by_sha.get(sha)
        if not path.startswith("/lfs/") or p is None:
            return self.reply(404, {}, b"no such object")
        size = os.path.getsize(p)
        first, last, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and not args.ignore_range:
            spec = rng.replace("bytes=", "")
            a, _, b = spec.partition("-")
            first = int(a)
            last = int(b) if b else size - 1
            if first >= size or last < first:
                return self.reply(416, {"Content-Range": "bytes */%d" % size}, b"")
            last = min(last, size - 1)
            status = 206
        with open(p, "rb") as f:
            f.seek(first)
            body = bytearray(f.read(last - first + 1))
        if args.corrupt_at is not None and first <= args.corrupt_at <= last:
            body[args.corrupt_at - first] ^= 0x40
        if args.corrupt_ranges_at is not None and status == 206 and first <= args.corrupt_ranges_at <= last:
            body[args.corrupt_ranges_at - first] ^= 0x40
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
        self.end_headers()
        sent = len(body)
        if args.cut_after is not None and not cut_done.is_set():
            cut_done.set()
            sent = min(args.cut_after, len(body))
            self.wfile.write(bytes(body[:sent]))
            self.wfile.flush()
            self.close_connection = True
            self.finish_log(status, sent)
            self.connection.shutdown(2)
            return
        self.wfile.write(bytes(body))
        self.finish_log(status, sent)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global args
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--cut-after", type=int)
    ap.add_argument("--corrupt-at", type=int)
    ap.add_argument("--corrupt-ranges-at", type=int)
    ap.add_argument("--ignore-range", action="store_true")
    ap.add_argument("--gated", action="append", default=[])
    ap.add_argument("--token")
    args = ap.parse_args()
    storage = Server(("127.0.0.1", 0), Storage)
    hub = Server(("127.0.0.1", 0), Hub)
    args.storage_url = "http://127.0.0.1:%d" % storage.server_address[1]
    for s in (storage, hub):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"hub": "http://127.0.0.1:%d" % hub.server_address[1], "storage": args.storage_url}, f)
    os.rename(tmp, args.ready)
    threading.Event().wait()


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""Reads a page in a running headless Chromium over the DevTools protocol (the status-page suite).

    status-page-cdp.py eval PORT EXPRESSION          print the expression's value as JSON
    status-page-cdp.py wait PORT EXPRESSION TIMEOUT [SINCE]
                                                     poll every 50 ms until the value is truthy;
                                                     print the seconds it took (since SINCE, a
                                                     `date +%s.%N`, if given), exit 1 at TIMEOUT
    status-page-cdp.py screenshot PORT FILE          save the page as PNG

PORT is Chromium's --remote-debugging-port on 127.0.0.1; the first page target is used. Needs
Debian's python3-websocket (websocket-client). Every call is bounded in time.
"""
import base64
import itertools
import json
import sys
import time
import urllib.request

import websocket


class Page:
    def __init__(self, port, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"no page target on DevTools port {port} within {timeout} s")
            time.sleep(0.1)
        self.ws = websocket.create_connection(targets[0]["webSocketDebuggerUrl"], timeout=10, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method, **params):
        i = next(self.ids)
        self.ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            m = json.loads(self.ws.recv())
            if m.get("id") == i:
                if "error" in m:
                    raise SystemExit(f"{method}: {m['error']}")
                return m["result"]

    def eval(self, expression):
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in r:
            return None
        return r["result"].get("value")


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    page = Page(port)
    if cmd == "eval":
        print(json.dumps(page.eval(sys.argv[3])))
    elif cmd == "wait":
        expression, timeout = sys.argv[3], float(sys.argv[4])
        since = float(sys.argv[5]) if len(sys.argv) > 5 else time.time()
        while time.time() - since < timeout:
            if page.eval(expression):
                print(f"{time.time() - since:.2f}")
                return
            time.sleep(0.05)
        raise SystemExit(1)
    elif cmd == "screenshot":
        shot = page.call("Page.captureScreenshot", format="png")
        with open(sys.argv[3], "wb") as f:
            f.write(base64.b64decode(shot["data"]))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

# Runs SQL through Python's own sqlite3 (the reference engine, with SQLite's default
# double-quoted-string rule), read-only. Input on stdin: JSON [[db_path, sql], ...].
# Output: JSON [{"rows": [[...]]} | {"error": "..."}], bytes as {"$binary": base64}.
import base64, json, sqlite3, sys

def cell(v):
    if isinstance(v, bytes):
        return {"$binary": base64.b64encode(v).decode()}
    return v

out, conns = [], {}
for path, sql in json.load(sys.stdin):
    if path not in conns:
        conns[path] = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = conns[path].execute(sql).fetchall()
        out.append({"rows": [[cell(v) for v in row] for row in rows]})
    except Exception as e:
        out.append({"error": str(e)})
json.dump(out, sys.stdout)

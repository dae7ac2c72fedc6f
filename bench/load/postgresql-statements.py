"""Writes the state.postgresql store's own statements as pgbench scripts, taken from PostgreSqlStateSql.cs so that
they stay the store's: create.sql (its tables), get.sql (its GET), write.sql (its write of one key: an overwrite
without etag by a value of the same size, within the quota) and resize.sql (the same, by a value of a random size
between 30 and 60 bytes, so that the app's usage changes), and overwrite.sql and overwrite-resize.sql, the same two writes by
the store's overwrite statement (what a save of a key that exists runs first, and, in the bench, only). Usage: postgresql-statements.py SOURCE OUT_DIR"""
import re
import sys

source = open(sys.argv[1]).read()
out = sys.argv[2]
constants = {name: re.search(rf'const string {name} = "(.*?)";', source).group(1) for name in ("Live", "Cost", "Expires")}
parameters = {
    "@key": "('app||k' || :i)", "@prefix": "'app'", "@isset": "true", "@ttlms": "NULL::bigint", "@contenttype": "NULL::text",
    "@value": ":value", "@cost": "(octet_length('app||k' || :i) + octet_length(:value))", "@condition": "0",
    "@version": "0", "@maxkeys": "100000", "@maxbytes": "104857600",
}


def text_of(name, raw):
    match = re.search(rf'string {name} {{ get; }} = \$"""(.*?)""";', source, re.S) if raw else \
        re.search(rf'string {name} {{ get; }} = \$"(.*?)";', source)
    text = match.group(1)
    for constant, value in constants.items():
        text = text.replace("{" + constant + "}", value)
    return text.replace("{table}", "state").replace("{bareTable}", "state")


with open(f"{out}/create.sql", "w") as f:
    f.write(text_of("CreateTable", True))
same = "convert_to('{\"order\":42,\"items\":[\"a\",\"b\",\"c\"]}', 'UTF8')"
resized = "convert_to(repeat('x', :n), 'UTF8')"
for file, name, raw, value in (("get", "Get", False, same), ("write", "Write", True, same), ("resize", "Write", True, resized),
                               ("overwrite", "Overwrite", True, same), ("overwrite-resize", "Overwrite", True, resized)):
    text = text_of(name, raw)
    for parameter, replacement in parameters.items():
        text = text.replace(parameter, replacement)
    with open(f"{out}/{file}.sql", "w") as f:
        f.write("\\set i random(0, 1023)\n\\set n random(30, 60)\n" + " ".join(text.replace(":value", value).split()) + ";\n")

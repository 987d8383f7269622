#!/usr/bin/env python3
"""Builds config/upt.csv (id,name,type,kanwil,aliases) from ../shared/data/upt-gazetteer.csv.

Run from the repository root: python3 config/tools/gen_upt.py ../shared/data/upt-gazetteer.csv
Where each part comes from is in config/upt.README.md. The ids leave out the class (Kelas I,
IIA, ...) on purpose: a reclassification must not change a site's id.
"""
import csv, re, sys

TYPES = {"lapas": "Lapas", "rutan": "Rutan", "lpka": "LPKA", "bapas": "Bapas", "other": ""}
QUALIFIERS = ["Narkotika", "Perempuan", "Pemuda", "Terbuka", "Khusus"]
CLASS_RE = re.compile(r"\bKelas (I|II|IIA|IIB|III)\b ")

# Nicknames in common use in the Indonesian press, mapped to the official name they refer to.
NICKNAMES = {
    "Lapas Kelas IIA Bogor": ["Lapas Paledang"],
    "Lapas Kelas I Semarang": ["Lapas Kedungpane"],
    "Lapas Kelas IIA Yogyakarta": ["Lapas Wirogunan"],
    "Lapas Kelas I Medan": ["Lapas Tanjung Gusta", "Lapas Tanjunggusta"],
    "Lapas Kelas I Malang": ["Lapas Lowokwaru"],
    "Lapas Kelas I Surabaya": ["Lapas Porong"],
    "Lapas Kelas IIB Sleman": ["Lapas Cebongan"],
    "Rutan Kelas I Jakarta Pusat": ["Rutan Salemba"],
    "Lapas Kelas I Batu High Risk Narkotika Nusakambangan": ["Lapas Batu Nusakambangan", "Lapas High Risk Nusakambangan"],
    "Rumah Sakit Umum Pengayoman Cipinang": ["RS Pengayoman", "RSU Pengayoman"],
}


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def split_name(name):
    """(type word, qualifier, class, place) of an official name."""
    words = name.split(" ")
    kind = words[0]
    rest = " ".join(words[1:])
    qualifier = ""
    for q in QUALIFIERS:
        if rest.startswith(q + " "):
            qualifier = q
            rest = rest[len(q) + 1:]
            break
    m = CLASS_RE.match(rest)
    klass = ""
    if m:
        klass = m.group(1)
        rest = rest[m.end():]
    return kind, qualifier, klass, rest


def spaced(klass):
    return {"IIA": "II A", "IIB": "II B"}.get(klass, klass)


def main(src):
    rows = list(csv.DictReader(open(src, encoding="utf-8")))
    # Two units that differ only by class (Lapas Kelas I and Kelas IIA Tangerang) both carry
    # their class in the id, so neither is taken for "the" one.
    base = {}
    for r in rows:
        if r["type"].strip() != "other":
            kind, qualifier, klass, place = split_name(r["name"].strip())
            key = slug(" ".join(x for x in [TYPES[r["type"].strip()], qualifier, place] if x))
            base[key] = base.get(key, 0) + 1
    out = []
    seen = set()
    for r in rows:
        name, kind_id, kanwil = r["name"].strip(), r["type"].strip(), r["kanwil"].strip()
        if kind_id == "other":
            uid = "rs-" + slug(name.replace("Rumah Sakit Umum ", ""))
            aliases = []
        else:
            kind, qualifier, klass, place = split_name(name)
            uid = slug(" ".join(x for x in [TYPES[kind_id], qualifier, place] if x))
            if base[uid] > 1:
                uid = f"{uid}-{klass.lower()}"
            short = " ".join(x for x in [kind, qualifier, place] if x)
            aliases = [short]
            if klass:
                aliases.append(" ".join(x for x in [kind, qualifier, "Klas", klass, place] if x))
                if spaced(klass) != klass:
                    aliases.append(" ".join(x for x in [kind, qualifier, "Kelas", spaced(klass), place] if x))
            if kind_id == "lapas" and not qualifier:
                aliases.append("LP " + place)
        aliases += NICKNAMES.get(name, [])
        if uid in seen:
            sys.exit(f"duplicate id {uid} for {name}")
        seen.add(uid)
        out.append((uid, name, kind_id, kanwil, "|".join(dict.fromkeys(aliases))))
    missing = set(NICKNAMES) - {o[1] for o in out}
    if missing:
        sys.exit(f"nicknames for unknown names: {missing}")
    w = csv.writer(open("config/upt.csv", "w", encoding="utf-8", newline=""), lineterminator="\n")
    w.writerow(["id", "name", "type", "kanwil", "aliases"])
    for o in sorted(out):
        w.writerow(o)
    print(f"{len(out)} UPT written to config/upt.csv")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/upt-gazetteer.csv")

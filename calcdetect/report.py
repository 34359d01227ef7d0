"""Draft report text from findings: pure functions, no I/O.

The wording follows what radiologists write in spine / abdominal CT reports
("Atherosclerotic calcification of the infrarenal abdominal aorta from L2 to L4").
Every report starts with a header saying it is a computer-generated draft that a
radiologist must review; calcdetect never writes a final report.

Deliberate omissions (documented so nobody "fixes" them silently):
* Renal calculi are not called "nonobstructing": calcdetect does not assess
  hydronephrosis, so it cannot support that word.
* No severity adjective ("mild", "severe") for vascular calcium: there is no
  agreed Agatston grading for the abdominal aorta; the score and volume are given
  instead.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence

from calcdetect.anatomy.regions import REGIONS, Region, format_level_span, level_index
from calcdetect.types import Finding, Kind, Morphology, Report

__all__ = ["DRAFT_HEADER", "draft_report", "number_word"]

DRAFT_HEADER = (
    "COMPUTER-GENERATED DRAFT - NOT A DIAGNOSIS. Produced by calcdetect for review and "
    "editing by a radiologist; verify every statement against the images."
)

_NUMBER_WORDS = ("No", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten")

# The regions the report speaks about, in reading order.
_REPORTED = (Region.AORTA, Region.ILIAC, Region.RENAL, Region.LIGAMENTUM_FLAVUM)


def number_word(n: int) -> str:
    """``2`` -> ``"Two"``; numerals from 11 on (report style)."""
    return _NUMBER_WORDS[n] if 0 <= n < len(_NUMBER_WORDS) else str(n)


def _fmt_mm(value: float) -> str:
    return f"{value:.0f} mm" if value >= 3 else f"{value:.1f} mm"


def _span_phrase(levels: Sequence[str | None]) -> str:
    """``["L2", "L4"]`` -> ``"from L2 to L4"``; one level -> ``"at L3"``; none -> ``""``."""
    span = format_level_span([lv for lv in levels if lv])
    if span is None:
        return ""
    if "-" in span:
        lo, hi = span.split("-")
        return f"from {lo} to {hi}"
    return f"at {span}"


def _aorta_lines(findings: Sequence[Finding]) -> list[str]:
    by_segment: dict[str, list[Finding]] = defaultdict(list)
    for f in findings:
        by_segment[f.segment or "abdominal"].append(f)
    lines = []
    # Cranial segments first, as a reader scrolls down the scan.
    order = {"thoracic": 0, "suprarenal": 1, "abdominal": 2, "infrarenal": 3}
    for segment in sorted(by_segment, key=lambda s: order.get(s, 9)):
        group = by_segment[segment]
        name = {
            "thoracic": "descending thoracic aorta",
            "suprarenal": "suprarenal abdominal aorta",
            "infrarenal": "infrarenal abdominal aorta",
        }.get(segment, "abdominal aorta")
        agatston = sum(f.lesion.agatston for f in group)
        volume = sum(f.lesion.volume_mm3 for f in group)
        where = _span_phrase([f.level for f in group])
        where = f" {where}" if where else ""
        lines.append(
            f"Atherosclerotic calcification of the {name}{where} "
            f"(Agatston {agatston:.0f}; volume {volume:.0f} mm3)."
        )
    return lines


def _english_list(words: Sequence[str]) -> str:
    """``["common", "external", "internal"]`` -> ``"common, external and internal"``."""
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _iliac_lines(findings: Sequence[Finding]) -> list[str]:
    # "Calcified plaque in the right common and external iliac arteries and in the
    # left common, external and internal iliac arteries." / "... in the common
    # iliac arteries, bilateral."
    by_side: dict[str, set[str]] = defaultdict(set)
    for f in findings:
        by_side[f.side or "unspecified side"].add(f.segment or "")
    order = ("common", "external", "internal", "")
    sides = sorted(by_side, key=lambda s: {"right": 0, "left": 1}.get(s, 2))
    bilateral = sides == ["right", "left"] and by_side["right"] == by_side["left"]
    parts = []
    for side in sides[:1] if bilateral else sides:
        segs = [s for s in order if s in by_side[side] and s]
        segs_text = _english_list(segs) if segs else ""
        noun = "iliac arteries" if bilateral or len(segs) > 1 else "iliac artery"
        side_text = side if side in ("left", "right") and not bilateral else ""
        parts.append(" ".join(w for w in (side_text, segs_text, noun) if w))
    total_agatston = sum(f.lesion.agatston for f in findings)
    where = " and in the ".join(parts) + (", bilateral" if bilateral else "")
    return [f"Calcified plaque in the {where} (Agatston {total_agatston:.0f})."]


def _pole(f: Finding) -> str | None:
    seg = f.segment or ""
    for pole in ("upper pole", "interpolar region", "lower pole", "renal pelvis"):
        if pole.split()[0] in seg:
            return pole
    return None


def _article(number_text: str) -> str:
    """ "A" or "An" before a number as read aloud: an 8 mm, an 11 mm, an 18 mm, an 80 mm."""
    digits = number_text.split()[0].split(".")[0]
    return "An" if digits.startswith("8") or digits in ("11", "18") else "A"


def _renal_lines(findings: Sequence[Finding]) -> list[str]:
    lines = []
    stones = [f for f in findings if f.kind == Kind.STONE]
    for side in ("right", "left"):
        side_stones = sorted(
            (f for f in stones if f.side == side), key=lambda f: -f.lesion.max_diameter_mm
        )
        if not side_stones:
            continue
        largest = side_stones[0]
        size = _fmt_mm(largest.lesion.max_diameter_mm)
        pole = _pole(largest)
        where = f" in the {pole}" if pole else ""
        if len(side_stones) == 1:
            lines.append(f"{_article(size)} {size} calculus in the {side} kidney{where}.")
        else:
            lines.append(
                f"{number_word(len(side_stones))} calculi in the {side} kidney, "
                f"the largest {size}{where}."
            )
    ureteral = [f for f in findings if f.kind == Kind.URETERAL_STONE]
    for f in sorted(ureteral, key=lambda f: (f.side or "", f.level or "")):
        level = f" at the level of {f.level}" if f.level else ""
        side = f"{f.side} " if f.side else ""
        size = _fmt_mm(f.lesion.max_diameter_mm)
        lines.append(f"{_article(size)} {size} {side}ureteral calculus{level}.")
    nephro = [f for f in findings if f.kind == Kind.NEPHROCALCINOSIS]
    if nephro:
        sides = {f.side for f in nephro if f.side}
        lateral = "bilateral" if sides == {"left", "right"} else (f"{sides.pop()} kidney" if sides else "")
        medullary = sum(1 for f in nephro if (f.segment or "").startswith("medull"))
        pattern = "medullary" if medullary >= len(nephro) / 2 else "cortical"
        punctate = all(f.morphology == Morphology.PUNCTATE for f in nephro)
        text = f"{'Punctate ' if punctate else ''}{pattern} nephrocalcinosis"
        text = text[0].upper() + text[1:]
        lines.append(f"{text}, {lateral}." if lateral else f"{text}.")
    return lines


def _sides_text(findings: Sequence[Finding]) -> str:
    sides = {f.side for f in findings if f.side}
    return "bilateral" if sides == {"left", "right"} else (sides.pop() if sides else "")


def _lf_lines(findings: Sequence[Finding]) -> list[str]:
    # One sentence per level when few levels are involved, one multilevel sentence
    # otherwise: radiologists summarise, they do not list every fleck.
    by_level: dict[str | None, list[Finding]] = defaultdict(list)
    for f in findings:
        by_level[f.level].append(f)
    levels = sorted((lv for lv in by_level if lv), key=level_index)
    largest = max(findings, key=lambda f: f.lesion.max_diameter_mm)
    if len(levels) > 3:
        span = format_level_span(levels)
        lo, hi = span.split("-") if span and "-" in span else (span, span)
        at = f" at {largest.level}" if largest.level else ""
        return [
            f"Multilevel calcification of the ligamentum flavum from {lo} to {hi}, "
            f"{_sides_text(findings)}, the largest {_fmt_mm(largest.lesion.max_diameter_mm)}{at}."
            .replace(", ,", ",")
        ]
    lines = []
    for level in levels + ([None] if None in by_level else []):
        group = by_level[level]
        size = _fmt_mm(max(f.lesion.max_diameter_mm for f in group))
        where = f" at {level}" if level else ""
        sides = _sides_text(group)
        sides = f", {sides}" if sides else ""
        size_text = f", {size}" if len(group) == 1 else f", the largest {size}"
        lines.append(f"Calcification of the ligamentum flavum{where}{sides}{size_text}.")
    return lines


_LINES = {
    Region.AORTA: _aorta_lines,
    Region.ILIAC: _iliac_lines,
    Region.RENAL: _renal_lines,
    Region.LIGAMENTUM_FLAVUM: _lf_lines,
}


def _impression(by_region: Mapping[Region, list[Finding]]) -> list[str]:
    items: list[str] = []
    vascular = [r for r in (Region.AORTA, Region.ILIAC) if by_region.get(r)]
    if vascular:
        total = sum(f.lesion.agatston for r in vascular for f in by_region[r])
        segments = {f.segment for f in by_region.get(Region.AORTA, [])}
        aorta_name = (
            "thoracic and abdominal aorta" if "thoracic" in segments and len(segments) > 1
            else "thoracic aorta" if segments == {"thoracic"} else "abdominal aorta"
        )
        names = " and ".join(aorta_name if r == Region.AORTA else "iliac arteries" for r in vascular)
        items.append(f"Atherosclerotic calcification of the {names} (total Agatston {total:.0f}).")
    renal = by_region.get(Region.RENAL, [])
    stones = [f for f in renal if f.kind in (Kind.STONE, Kind.URETERAL_STONE)]
    if stones:
        sides = sorted({f.side for f in stones if f.side}, key=lambda s: s != "right")
        side_text = "bilateral" if len(sides) == 2 else (sides[0] if sides else "")
        largest = max(f.lesion.max_diameter_mm for f in stones)
        ureteral = any(f.kind == Kind.URETERAL_STONE for f in stones)
        what = "urolithiasis" if ureteral else "nephrolithiasis"
        items.append(
            f"{(side_text + ' ' + what).strip().capitalize()} "
            f"({len(stones)} calcul{'us' if len(stones) == 1 else 'i'}, largest {_fmt_mm(largest)})."
        )
    if any(f.kind == Kind.NEPHROCALCINOSIS for f in renal):
        items.append("Nephrocalcinosis.")
    lf = by_region.get(Region.LIGAMENTUM_FLAVUM, [])
    if lf:
        span = format_level_span([f.level for f in lf if f.level])
        items.append(f"Ligamentum flavum calcification{' at ' + span if span else ''}.")
    return items


def draft_report(
    findings: Sequence[Finding],
    regions_in_fov: Mapping[Region, bool],
    *,
    notes: Sequence[str] = (),
    not_found: Collection[Region] = (),
) -> Report:
    """Draft the Findings and Impression sections.

    Parameters
    ----------
    findings
        Classified findings; those in ``Region.OTHER`` (look-alikes) are not
        reported as calcifications.
    regions_in_fov
        Which report regions the scan covers: a region with no finding gets its
        negative sentence when covered and the "not included" sentence when not.
    notes
        Caveats for the reader (transitional anatomy, levels not counted,
        contrast); they go to ``Report.notes``, not into the Findings wording.
    not_found
        Regions in view whose structures the anatomy stage did not find
        (:func:`calcdetect.anatomy.build.regions_not_found`): with no finding they
        get the "not identified; not assessed" sentence, never the negative one.

    Examples
    --------
    >>> r = draft_report([], {Region.AORTA: True, Region.ILIAC: False})
    >>> print(r.findings)
    No calcification of the abdominal aorta.
    The iliac arteries are not included in the field of view.
    """
    by_region: dict[Region, list[Finding]] = defaultdict(list)
    for f in findings:
        by_region[Region(f.region)].append(f)

    lines: list[str] = []
    aortoiliac_clear = all(
        regions_in_fov.get(r, False) and not by_region.get(r) and r not in not_found
        for r in (Region.AORTA, Region.ILIAC)
    )
    for region in _REPORTED:
        if region not in regions_in_fov:
            continue
        if by_region.get(region):
            lines.extend(_LINES[region](by_region[region]))
        elif region in (Region.AORTA, Region.ILIAC) and aortoiliac_clear:
            if region == Region.AORTA:  # one sentence for both vessels
                lines.append("No aortoiliac calcification.")
        elif regions_in_fov[region] and region in not_found and REGIONS[region].not_found:
            lines.append(REGIONS[region].not_found)
        elif regions_in_fov[region]:
            lines.append(REGIONS[region].negative)
        else:
            lines.append(REGIONS[region].not_in_fov)

    impression = _impression(by_region)
    if not impression:
        covered = [r for r in _REPORTED if regions_in_fov.get(r) and r not in not_found]
        impression = (
            ["No vascular, renal or ligamentous calcification detected in the field of view."]
            if covered
            else ["No target region is included in the field of view; nothing to assess."]
        )
    numbered = [f"{n}. {text}" for n, text in enumerate(impression, start=1)]
    return Report(
        header=DRAFT_HEADER,
        findings="\n".join(lines) if lines else "No findings.",
        impression="\n".join(numbered),
        notes="\n".join(f"- {n}" for n in dict.fromkeys(notes)),
    )

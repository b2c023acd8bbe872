"""What a pdfium page holds, read quickly: the points of its paths and the boxes of its characters.

The ruled-table finder asks pdfium about every path object and every character of a page, and
Korean public PDFs have many: page 17 of `2021년도_중소벤처기업부_업무계획.pdf` draws its dotted
frames as 10,131 separate half-point dashes. Through pypdfium2's ctypes bindings each question
costs more than pdfium takes to answer it (every pointer argument is type-checked and converted),
so these hot loops call the same pdfium functions through cffi with plain pointers: a bounding
box takes 0.9 µs instead of 3.2. The functions are the ones pypdfium2 loaded (their addresses are
taken from its bindings), so there is one pdfium in the process and its handles are shared.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import cffi
import pypdfium2.raw as pdfium_c

if TYPE_CHECKING:
    import pypdfium2

Point = tuple[float, float]
Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)

# Form XObjects nested deeper than this are not searched (pypdfium2's own default is 15).
MAX_FORM_DEPTH = 15
# A path that is larger than this (points) either way is walked without asking about its stroke.
CLEARLY_LARGE = 8.0
# pdfium hands back single-precision floats: a length is never trusted closer than this.
FLOAT_SLACK = 0.01

_ffi = cffi.FFI()


def _function(binding: Any, signature: str) -> Any:
    """pypdfium2's pdfium function `binding`, callable through cffi as `signature`."""
    return _ffi.cast(signature, ctypes.cast(binding, ctypes.c_void_p).value)


_count_page_objects = _function(pdfium_c.FPDFPage_CountObjects, "int(*)(void*)")
_get_page_object = _function(pdfium_c.FPDFPage_GetObject, "void*(*)(void*, int)")
_count_form_objects = _function(pdfium_c.FPDFFormObj_CountObjects, "int(*)(void*)")
_get_form_object = _function(pdfium_c.FPDFFormObj_GetObject, "void*(*)(void*, unsigned long)")
_object_type = _function(pdfium_c.FPDFPageObj_GetType, "int(*)(void*)")
_object_matrix = _function(pdfium_c.FPDFPageObj_GetMatrix, "int(*)(void*, float*)")  # FS_MATRIX: 6 floats
_object_bounds = _function(pdfium_c.FPDFPageObj_GetBounds, "int(*)(void*, float*, float*, float*, float*)")
_draw_mode = _function(pdfium_c.FPDFPath_GetDrawMode, "int(*)(void*, int*, int*)")
_stroke_width = _function(pdfium_c.FPDFPageObj_GetStrokeWidth, "int(*)(void*, float*)")
_count_segments = _function(pdfium_c.FPDFPath_CountSegments, "int(*)(void*)")
_get_segment = _function(pdfium_c.FPDFPath_GetPathSegment, "void*(*)(void*, int)")
_segment_type = _function(pdfium_c.FPDFPathSegment_GetType, "int(*)(void*)")
_segment_point = _function(pdfium_c.FPDFPathSegment_GetPoint, "int(*)(void*, float*, float*)")
_segment_closes = _function(pdfium_c.FPDFPathSegment_GetClose, "int(*)(void*)")
_count_chars = _function(pdfium_c.FPDFText_CountChars, "int(*)(void*)")
_char_code = _function(pdfium_c.FPDFText_GetUnicode, "unsigned int(*)(void*, int)")
_char_generated = _function(pdfium_c.FPDFText_IsGenerated, "int(*)(void*, int)")
_char_box = _function(pdfium_c.FPDFText_GetLooseCharBox, "int(*)(void*, int, float*)")  # FS_RECTF: l, t, r, b

_PATH, _FORM = pdfium_c.FPDF_PAGEOBJ_PATH, pdfium_c.FPDF_PAGEOBJ_FORM
_MOVETO, _BEZIERTO = pdfium_c.FPDF_SEGMENT_MOVETO, pdfium_c.FPDF_SEGMENT_BEZIERTO


def _handle(pypdfium2_object: Any) -> Any:
    """A pypdfium2 page or text page's pdfium handle as a cffi pointer."""
    return _ffi.cast("void*", ctypes.cast(pypdfium2_object.raw, ctypes.c_void_p).value)


def path_subpaths(page: pypdfium2.PdfPage, min_length: float) -> Iterator[tuple[list[Point], bool]]:
    """Every subpath of every path object that may hold a segment `min_length` long, as its on-curve
    points in page space (PDF origin) and whether it is closed; inside form XObjects too.

    Like pdfminer, a Bézier segment counts by its end point only: its two control points are
    skipped, so a curve between two points reads as the straight line joining them.
    """
    reader = _PathReader(min_length)
    for path, matrix in reader.paths(_handle(page)):
        yield from reader.subpaths(path, matrix)


class _PathReader:
    """Walks a page's path objects; holds the out-parameters pdfium fills in (one page at a time)."""

    def __init__(self, min_length: float) -> None:
        self.limit = min_length - FLOAT_SLACK
        self.matrix = _ffi.new("float[6]")
        self.box = _ffi.new("float[4]")
        self.box_parts = tuple(self.box + i for i in range(4))
        self.mode = _ffi.new("int[2]")
        self.mode_parts = (self.mode + 0, self.mode + 1)
        self.width = _ffi.new("float[1]")
        self.point = _ffi.new("float[2]")
        self.point_parts = (self.point + 0, self.point + 1)

    def paths(self, page: Any) -> Iterator[tuple[Any, Matrix]]:
        """Path objects that may hold a long enough segment, with their matrix to page space.

        pdfium stores an object's matrix relative to the form that holds it, so the forms' matrices
        are composed on the way down (pypdfium2's `get_objects` would not).
        """
        stack = [(page, _count_page_objects, _get_page_object, IDENTITY, 0)]
        matrix = self.matrix
        while stack:
            parent, count, get, outer, depth = stack.pop()
            outer_scale = _least_scale(*outer[:4])
            for index in range(count(parent)):
                obj = get(parent, index)
                kind = _object_type(obj)
                if kind == _PATH:
                    if not self._too_small(obj, outer, outer_scale) and _object_matrix(obj, matrix):
                        yield obj, _concat(tuple(matrix), outer)
                elif kind == _FORM and depth + 1 < MAX_FORM_DEPTH and _object_matrix(obj, matrix):
                    stack.append((obj, _count_form_objects, _get_form_object, _concat(tuple(matrix), outer), depth + 1))

    def _too_small(self, path: Any, outer: Matrix, outer_scale: float) -> bool:
        """True when no segment of the path can be `min_length` long in page space.

        pdfium's bounding box holds every point of the path (Bézier control points included); a
        stroked path's box is also grown by the line width on each side (`CPDF_PathObject::
        CalcBoundingBox`). Only half of that growth is taken back off, scaled by the least the
        matrices can shrink a length: an under-estimate, so a path that could hold a long enough
        segment is never skipped (`bench/pdf_speed.py --check-skips` confirms it page by page).
        """
        if not _object_bounds(path, *self.box_parts):
            return False
        left, bottom, right, top = self.box
        if outer is not IDENTITY:  # the box is in the form's space: take its corners to the page
            a, b, c, d, e, f = outer
            xs = (a * left + c * bottom, a * left + c * top, a * right + c * bottom, a * right + c * top)
            ys = (b * left + d * bottom, b * left + d * top, b * right + d * bottom, b * right + d * top)
            left, right, bottom, top = min(xs) + e, max(xs) + e, min(ys) + f, max(ys) + f
        extent = max(right - left, top - bottom)
        if extent < self.limit:
            return True
        if extent >= CLEARLY_LARGE:
            return False
        if not _draw_mode(path, *self.mode_parts) or not self.mode[1]:
            return False  # a path that is only filled has the box of its points: measured already
        if not _stroke_width(path, self.width) or not _object_matrix(path, self.matrix):
            return False
        a, b, c, d, _, _ = self.matrix
        growth = self.width[0] * _least_scale(a, b, c, d) * outer_scale
        return extent - growth < self.limit

    def subpaths(self, path: Any, matrix: Matrix) -> Iterator[tuple[list[Point], bool]]:
        a, b, c, d, e, f = matrix
        point = self.point
        px, py = self.point_parts
        points: list[Point] = []
        closed = False
        bezier = 0
        for index in range(_count_segments(path)):
            segment = _get_segment(path, index)
            kind = _segment_type(segment)
            if kind == _MOVETO:
                if len(points) > 1:
                    yield points, closed
                points, closed, bezier = [], False, 0
            elif kind == _BEZIERTO:
                bezier += 1
                if bezier % 3:
                    continue  # a control point
            _segment_point(segment, px, py)
            x, y = point
            points.append((a * x + c * y + e, b * x + d * y + f))
            if _segment_closes(segment):
                closed = True
        if len(points) > 1:
            yield points, closed


def _concat(inner: Matrix, outer: Matrix) -> Matrix:
    """`inner` then `outer` (PDF row-vector convention: p' = p x inner x outer)."""
    a1, b1, c1, d1, e1, f1 = inner
    a2, b2, c2, d2, e2, f2 = outer
    return (
        a1 * a2 + b1 * c2,
        a1 * b2 + b1 * d2,
        c1 * a2 + d1 * c2,
        c1 * b2 + d1 * d2,
        e1 * a2 + f1 * c2 + e2,
        e1 * b2 + f1 * d2 + f2,
    )


def _least_scale(a: float, b: float, c: float, d: float) -> float:
    """The smallest singular value of the matrix [[a, b], [c, d]]: the most it shrinks a length."""
    if b == 0.0 and c == 0.0:
        return min(abs(a), abs(d))
    half_sum = (a * a + b * b + c * c + d * d) / 2  # the squared singular values are half_sum ± root
    determinant = abs(a * d - b * c)
    return max(0.0, half_sum - ((half_sum - determinant) * (half_sum + determinant)) ** 0.5) ** 0.5


CharBox = tuple[int, str, float, float, float, float]  # index, character, left, top, right, bottom (PDF space)


def char_boxes(textpage: pypdfium2.PdfTextPage) -> Iterator[CharBox]:
    """(index, character, left, top, right, bottom) of each character pdfium read from the page.

    Spaces and line breaks, and the characters pdfium generated itself (the spaces between words
    it infers), are left out; their indices are skipped, so a gap in the indices is a separator.
    """
    handle = _handle(textpage)
    box = _ffi.new("float[4]")
    for index in range(_count_chars(handle)):
        code = _char_code(handle, index)
        char = chr(code) if 0 < code < 0x110000 else ""
        if not char.strip() or _char_generated(handle, index) == 1 or not _char_box(handle, index, box):
            continue
        left, top, right, bottom = box
        yield index, char, left, top, right, bottom

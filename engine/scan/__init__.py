"""Image scanning: installed packages, risky configuration, external vulnerability reports.

``Scanner(images, content).scan(name)`` returns a ``ScanReport`` (``to_json()`` for
``--json``, ``format_text(report)`` for a terminal). Layers are read from their blobs with
the engine's tar reader and never extracted.
"""

from engine.scan.report import ScanReport, format_text
from engine.scan.scanner import Scanner

__all__ = ["ScanReport", "Scanner", "format_text"]

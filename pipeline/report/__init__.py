"""Report library (stage 4): tables, figures, HTML/PDF and the released files.

Entry point: :func:`pipeline.report.build.build_report`.
"""

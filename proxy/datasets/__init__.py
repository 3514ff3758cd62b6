"""Dataset logic without I/O, shared by the admin API, the web page and the CLI export:
which values of a trace a row carries (``columns``), review rules (``review``) and the
export formats (``formats``).
"""

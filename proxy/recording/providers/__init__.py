"""One parser per provider endpoint behind one small protocol (``base``) and a registry (pure)."""

"""Learning a small visuomotor policy from recorded demonstrations (torch, imported lazily by callers)."""

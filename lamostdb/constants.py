"""Physical constants used across lamostdb (one definition each)."""

#: Speed of light in vacuum, km/s (exact, SI definition).
C_KMS: float = 299792.458

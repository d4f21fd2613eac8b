"""Operations: health, metrics, triage, incidents."""

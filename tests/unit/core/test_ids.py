from onepass.ids import random_identifier


def test_identifiers_are_alphanumeric_never_option_like_and_distinct() -> None:
    values = {random_identifier(24) for _ in range(2000)}
    assert len(values) == 2000
    assert all(len(v) == 24 and v.isalnum() and v.isascii() for v in values)

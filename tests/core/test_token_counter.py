from modules.core.token_counter import count_prompt_tokens, format_token_count


def fake_count(text: str) -> tuple[int, int]:
    n = len(text.split())
    return n, max(75, -(-max(n, 1) // 75) * 75)


def test_largest_scheduled_text_wins_and_tags_are_ignored():
    used, target = count_prompt_tokens("a b <lora:x:1> [c d e:f:5] AND g", 20, fake_count)
    assert (used, target) == (5, 75)  # "a b  c d e" is the longest text


def test_comments_are_not_counted():
    assert count_prompt_tokens("a b\n# c d e f", 20, fake_count) == (2, 75)


def test_chunk_target_grows():
    long = " ".join(["w"] * 80)
    assert count_prompt_tokens(long, 20, fake_count) == (80, 150)
    assert format_token_count(80, 150) == "80/150"

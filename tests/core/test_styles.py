"""styles.csv: reading, applying, extracting, saving (A1111 behaviour)."""
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modules.core.styles import (
    PromptStyle,
    StyleDatabase,
    StyleFileError,
    apply_styles_to_prompt,
    extract_style_text_from_prompt,
    merge_prompts,
    read_styles_csv,
)


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def db(tmp_path):
    write(tmp_path / "styles.csv",
          "name,prompt,negative_prompt\n"
          "Photo,\"photo of {prompt}, 35mm\",\"drawing, painting\"\n"
          "Master,masterpiece,lowres\n"
          "PosOnly,best quality,\n"
          "Empty,,\n")
    return StyleDatabase([tmp_path / "styles.csv"])


# --- merging ---------------------------------------------------------------------------------------------
def test_merge_prompts():
    assert merge_prompts("photo of {prompt}, 35mm", "a cat") == "photo of a cat, 35mm"
    assert merge_prompts("{prompt} and {prompt}", " x ") == " x  and  x "
    assert merge_prompts("masterpiece", "a cat") == "a cat, masterpiece"
    assert merge_prompts("  masterpiece ", "  a cat ") == "a cat, masterpiece"
    assert merge_prompts("masterpiece", "") == "masterpiece"
    assert merge_prompts("", " a cat ") == "a cat"
    assert apply_styles_to_prompt("cat", ["{prompt}, x", "y"]) == "cat, x, y"


def test_apply_by_name(db):
    assert db.apply_styles_to_prompt("a cat", ["Photo", "Master"]) == "photo of a cat, 35mm, masterpiece"
    assert db.apply_negative_styles_to_prompt("ugly", ["Photo", "Master"]) == "ugly, drawing, painting, lowres"
    assert db.apply_styles_to_prompt(" a cat ", ["Nope"]) == " a cat "  # unknown names ignored
    assert db.apply_negative_styles_to_prompt("", ["PosOnly"]) == ""
    assert db.get_style_prompts(["Master", "Nope"]) == ["masterpiece"]


# --- extraction ------------------------------------------------------------------------------------------
def test_extract_style_text():
    assert extract_style_text_from_prompt("masterpiece", "1girl, art by greg, masterpiece") == (True, "1girl, art by greg")
    assert extract_style_text_from_prompt("masterpiece, {prompt}", "masterpiece, 1girl, art by greg") == (True, "1girl, art by greg")
    assert extract_style_text_from_prompt("masterpiece, {prompt}", "exquisite, 1girl, art by greg") == (False, "exquisite, 1girl, art by greg")
    assert extract_style_text_from_prompt("masterpiece", " masterpiece ") == (True, "")
    assert extract_style_text_from_prompt("masterpiece", "supermasterpiece") == (False, "supermasterpiece")
    assert extract_style_text_from_prompt("", " a ") == (True, "a")
    assert extract_style_text_from_prompt("ab{prompt}b", "ab") == (False, "ab")  # left and right overlap


def test_extract_styles_from_prompt(db):
    prompt = db.apply_styles_to_prompt("a cat", ["Photo", "Master"])
    negative = db.apply_negative_styles_to_prompt("ugly", ["Photo", "Master"])
    assert db.extract_styles_from_prompt(prompt, negative) == (["Photo", "Master"], "a cat", "ugly")


def test_extract_needs_both_prompts_to_match(db):
    # Master's prompt matches, its negative does not: not extracted
    assert db.extract_styles_from_prompt("a cat, masterpiece", "ugly") == ([], "a cat, masterpiece", "ugly")
    # a style with an empty negative matches any negative
    assert db.extract_styles_from_prompt("a cat, best quality", " bad ") == (["PosOnly"], "a cat", "bad")
    # a style with no text at all never matches
    assert "Empty" not in db.extract_styles_from_prompt("", "")[0]


# --- reading ---------------------------------------------------------------------------------------------
def test_read_tolerant(tmp_path):
    path = write(tmp_path / "s.csv",
                 "\ufeffName, Prompt\n\n"
                 "a, \"x, {prompt}\"\n"
                 "# comment,ignored\n"
                 ",no name\n"
                 "b\n"
                 "\n")
    styles = read_styles_csv(path)
    assert styles == [PromptStyle("a", "x, {prompt}", "", str(path)), PromptStyle("b", "", "", str(path))]


def test_read_old_text_column_and_extra_columns(tmp_path):
    path = write(tmp_path / "old.csv", "name,text,negative_prompt,extra\nold,words,neg,zzz,more\n")
    assert read_styles_csv(path) == [PromptStyle("old", "words", "neg", str(path))]


def test_read_missing_and_empty_files(tmp_path):
    assert read_styles_csv(tmp_path / "none.csv") == []
    assert read_styles_csv(write(tmp_path / "empty.csv", "")) == []
    assert read_styles_csv(write(tmp_path / "bom.csv", "\ufeff\n\n")) == []


@pytest.mark.parametrize("content", [
    b"name,prompt\n\"unterminated,x\n",
    b"name,prompt\nok,\xff\xfe bad utf8\n",
    b"style,words\na,b\n",
])
def test_malformed_file_error_names_the_file(tmp_path, content):
    path = tmp_path / "broken styles.csv"
    path.write_bytes(content)
    with pytest.raises(StyleFileError) as info:
        read_styles_csv(path)
    assert str(path) in str(info.value) and info.value.path == str(path)


def test_database_reports_bad_file_and_keeps_good_ones(tmp_path):
    good = write(tmp_path / "a.csv", "name,prompt,negative_prompt\ns1,p1,n1\n")
    bad = write(tmp_path / "b.csv", "name,prompt\n\"oops\n")
    db = StyleDatabase([good, bad])
    assert list(db.styles) == ["s1"]
    assert len(db.errors) == 1 and str(bad) in db.errors[0]
    # the unreadable file is never overwritten
    with pytest.raises(StyleFileError):
        db.save_styles(bad)
    db.save_styles()
    assert bad.read_bytes() == b"name,prompt\n\"oops\n"


# --- several files, saving -------------------------------------------------------------------------------
def test_several_files_styles_remember_their_file(tmp_path):
    a = write(tmp_path / "styles.csv", "name,prompt,negative_prompt\nA,pa,na\nShared,from a,\n")
    b = write(tmp_path / "more.csv", "name,prompt,negative_prompt\nB,pb,nb\nShared,from b,\n")
    db = StyleDatabase([a, b])
    assert db.default_path == str(a)
    assert db.styles["A"].path == str(a) and db.styles["B"].path == str(b)
    assert db.styles["Shared"] == PromptStyle("Shared", "from b", "", str(b))  # later file wins

    db.set_style("New", "pn", "nn")  # new: first file
    db.set_style("B", "pb2", "nb2")  # existing: stays in its file
    db.delete_style("A")
    db.save_styles()
    # "Shared" of the first file is hidden by the second file's, but not lost
    assert read_styles_csv(a) == [PromptStyle("New", "pn", "nn", str(a)), PromptStyle("Shared", "from a", "", str(a))]
    assert read_styles_csv(b) == [PromptStyle("B", "pb2", "nb2", str(b)), PromptStyle("Shared", "from b", "", str(b))]

    db.set_style("Moved", "m", "", path=tmp_path / "third.csv")
    db.save_styles(tmp_path / "third.csv")
    assert read_styles_csv(tmp_path / "third.csv")[0].name == "Moved"
    with pytest.raises(ValueError):
        db.set_style("#bad", "", "")


def test_save_is_atomic_and_keeps_mode(tmp_path):
    path = write(tmp_path / "styles.csv", "name,prompt,negative_prompt\nx,y,z\n")
    os.chmod(path, 0o640)
    db = StyleDatabase(str(path))
    db.set_style("w", "leading space kept? ", "  yes")
    db.save_styles(path)
    assert sorted(os.listdir(tmp_path)) == ["styles.csv"]  # no temp file left
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM, as the reference writes
    db.reload()
    assert db.styles["w"] == PromptStyle("w", "leading space kept? ", "  yes", str(path))


def test_save_creates_missing_file_and_reload_sees_edits(tmp_path):
    path = tmp_path / "sub" / "styles.csv"
    db = StyleDatabase([path])
    assert db.styles == {} and db.errors == []
    db.set_style("s", "p", "n")
    db.save_styles()
    assert read_styles_csv(path) == [PromptStyle("s", "p", "n", str(path))]
    write(path, "name,prompt,negative_prompt\nt,q,m\n")
    assert db.reload() == []
    assert list(db.styles) == ["t"]


# --- properties ------------------------------------------------------------------------------------------
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
field_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
style_names = st.text(min_size=1, max_size=20, alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")).filter(
    lambda n: not n.startswith("#"))


@PROPS
@given(st.dictionaries(style_names, st.tuples(field_text, field_text), max_size=6))
def test_save_reload_round_trip(tmp_path, styles):
    path = tmp_path / "round.csv"
    if path.exists():
        path.unlink()
    db = StyleDatabase([path])
    for name, (prompt, negative) in styles.items():
        db.set_style(name, prompt, negative)
    db.save_styles()
    again = StyleDatabase([path])
    assert again.errors == []
    assert again.styles == db.styles


words = st.text(alphabet="abcxyz 12", max_size=15)
plain_style = st.text(alphabet="abcdef", min_size=1, max_size=8)


@PROPS
@given(words, words, plain_style, st.one_of(plain_style, st.just("")), st.booleans())
def test_apply_then_extract_round_trip(tmp_path, prompt, negative, style_text, style_negative, placeholder):
    if placeholder:
        style_text = f"{style_text} {{prompt}}, q"
    path = tmp_path / "p.csv"
    db = StyleDatabase([path])
    db.set_style("S", style_text, style_negative)
    styled = db.apply_styles_to_prompt(prompt, ["S"])
    styled_negative = db.apply_negative_styles_to_prompt(negative, ["S"])
    if placeholder:
        assert styled == style_text.replace("{prompt}", prompt)
    names, p, n = db.extract_styles_from_prompt(styled, styled_negative)
    assert names == ["S"]
    assert p == (prompt if placeholder else prompt.strip())
    assert n == negative.strip()


def test_png_info_and_the_style_database_extract_styles_alike():
    """One implementation: the infotext parser (PNG Info, /sdapi/v1/png-info) peels styles as the database does."""
    from modules.core import infotext
    from modules.core.styles import PromptStyle

    styles = [PromptStyle("masterpiece", "masterpiece", ""), PromptStyle("neg", "", "blurry")]
    for prompt, negative in [("supermasterpiece", ""), ("a cat, masterpiece", "ugly, blurry"), ("masterpiece", "")]:
        db = StyleDatabase([])
        db.styles = {s.name: s for s in styles}
        assert infotext.extract_styles_from_prompt(styles, prompt, negative) == db.extract_styles_from_prompt(prompt, negative)
    params = infotext.parse_generation_parameters("supermasterpiece\nSteps: 20, Sampler: Euler, CFG scale: 7", styles=styles)
    assert params["Prompt"] == "supermasterpiece" and params.get("Styles array", []) == []

import json
import subprocess
import sys

from gptviz.cli import main


def test_tokenize_json(capsys):
    assert main(["tokenize", "--json", "Every effort moves you"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"ids": [6109, 3626, 6100, 345], "tokens": ["Every", " effort", " moves", " you"]}


def test_tokenize_special_token(capsys):
    assert main(["tokenize", "--json", "a <|endoftext|>"]) == 0
    assert json.loads(capsys.readouterr().out)["ids"] == [64, 220, 50256]


def test_info_preset_json(capsys):
    assert main(["info", "--preset", "124M", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["params"] == 124_412_160
    assert out["params_untied"] == 163_009_536
    assert out["bytes_fp32"] == 124_412_160 * 4
    assert (out["n_layers"], out["n_heads"], out["emb_dim"], out["context_length"]) == (12, 12, 768, 1024)


def test_info_of_a_missing_checkpoint_is_one_line(tmp_path, capsys):
    assert main(["info", str(tmp_path / "nothing"), "--json"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not found" in err


def test_console_entry_point_runs_as_a_module():
    result = subprocess.run(
        [sys.executable, "-m", "gptviz", "tokenize", "--json", "Hello, I am"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert json.loads(result.stdout)["ids"] == [15496, 11, 314, 716]

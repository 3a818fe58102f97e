import os
import subprocess
import sys
import textwrap

import xf_core


def run_xf(*args, env=None):
    code = "import sys; from xf_core.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env)


def test_help_lists_installed_commands():
    out = run_xf("--help")
    assert out.returncode == 0
    assert "env" in out.stdout


def test_env_prints_versions():
    out = run_xf("env")
    assert out.returncode == 0
    assert (
        "python:" in out.stdout
        and f"xf-core: {xf_core.__version__}" in out.stdout
        and "accelerator:" in out.stdout
    )


def test_commands_are_discovered_from_entry_points(tmp_path):
    # A fake installed distribution that adds `xf hello` through the xf.commands group.
    (tmp_path / "hello_cmd.py").write_text(
        textwrap.dedent(
            '''
            def setup(parser):
                """Say hello."""
                parser.add_argument("name")
                def run(args):
                    print(f"hello {args.name}")
                    return 0
                return run
            '''
        )
    )
    dist = tmp_path / "hello_cmd-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: hello-cmd\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[xf.commands]\nhello = hello_cmd:setup\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = run_xf("--help", env=env)
    assert "hello" in out.stdout and "Say hello." in out.stdout
    out = run_xf("hello", "world", env=env)
    assert out.returncode == 0 and out.stdout == "hello world\n"


def test_no_command_prints_help_and_fails():
    out = run_xf()
    assert out.returncode == 2 and "COMMAND" in out.stdout

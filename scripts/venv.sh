# Shared by scripts/test and scripts/demo: a Python >= 3.11 and the project's .venv.
# Expects ROOT, VENV, say and die to be defined by the caller.

python_ok() {  # python_ok CMD -> true if CMD runs and is >= 3.11
    "$1" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1
}

find_python() {
    local candidate
    for candidate in python3 python3.11 python3.12 python3.13; do
        # pyenv shims exist for versions that are not active: actually run each one.
        if command -v "$candidate" >/dev/null 2>&1 && python_ok "$candidate"; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

stamp_key() {
    { sha256sum "$ROOT/pyproject.toml"; echo "$ROOT"; "$VENV/bin/python" -V; } 2>&1 | sha256sum | cut -d' ' -f1
}

setup_venv() {
    local stamp=$VENV/.stripe_sync_install_stamp
    if [[ -x $VENV/bin/python ]] && ! python_ok "$VENV/bin/python"; then
        say "existing .venv is broken or too old: recreating it"
        rm -rf "$VENV"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        local python
        python=$(find_python) || die "no Python >= 3.11 found (tried python3, python3.11, python3.12, python3.13)"
        say "creating .venv with $python ($("$python" -V 2>&1))"
        "$python" -m venv "$VENV"
    fi
    if [[ -f $stamp && $(cat "$stamp") == "$(stamp_key)" ]]; then
        say ".venv is current (pyproject.toml unchanged): skipping install"
    else
        say "installing: pip install -e '.[dev]' (first run takes a few minutes)"
        rm -f "$stamp"
        # (drops the warnings pip prints for configured local indexes that don't exist)
        local rc
        set +e
        "$VENV/bin/python" -m pip install --quiet -e "$ROOT[dev]" 2>&1 \
            | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
        rc=${PIPESTATUS[0]}
        set -e
        [[ $rc -eq 0 ]] || die "pip install failed (exit $rc)"
        stamp_key >"$stamp"
    fi
}

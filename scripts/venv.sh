# Shared by scripts/test and scripts/demo: make .venv and install streetwatch into it.
# Strict editable mode gives static tools (mypy) a real `streetwatch.*` tree to read,
# which the package-dir mapping would otherwise hide from them.

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

install_streetwatch() {
    local target=$1
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    local started=$SECONDS
    # pip's "Location ... is ignored" lines come from this machine's index settings: noise.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check \
        --config-settings editable_mode=strict -e "$target" \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
    echo "== installed $target in $((SECONDS - started)) s"
}

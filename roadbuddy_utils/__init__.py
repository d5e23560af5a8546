"""Road Buddy helpers: data, frames, demo data, notebook runner. Notebooks import this package."""
__version__ = "0.1.0"


def versions() -> dict:
    """Versions of Python and the key packages (printed by every notebook's setup cell)."""
    from .report.runner import package_versions

    return package_versions()

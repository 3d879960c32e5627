"""The Textual dashboard; import :class:`QwatchApp` from ``qwatch.app.main``.

Kept empty of imports so ``qwatch check`` never pays for loading Textual.
"""

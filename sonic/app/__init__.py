"""The interactive app (``sonic app``): :mod:`sonic.app.studio` does the work, :mod:`sonic.app.ui` is the page."""

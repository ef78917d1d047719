"""The editing tests' tiny SonicPipeline fixtures, shared with the editing-run and sound-control tests here."""

from tests.editing.conftest import pipe, source_image  # noqa: F401

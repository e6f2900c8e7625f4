"""The napari plugin: reader, writer, sample data and widgets (the only GUI-aware code)."""

"""Live watch and replay: the detectors of the archive commands, fed RIS Live or update files."""

"""Studies behind `polyrec bench <name>`: many configurations trained through `polyrec run`,
summarised in a results document (see ``mtl.py``)."""

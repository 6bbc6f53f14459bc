"""Files: atomic writes and the readers of the command line's inputs.

- :mod:`._atomic`: writes that never leave a half-written result where a reader can see it
  (:func:`replace_dir`, :func:`replace_file`, :func:`write_table_in_place`, ...).
- :mod:`._readers`: :func:`read_data` (``.h5ad`` or SpatialData ``.zarr``, optionally backed),
  :func:`quiet_zarr_warnings`.
- ``_model_dir``: the model directory (save, load, checks); imported on use, as it needs torch.

Nothing here imports the demo, the command line, the tools, the plots or the front ends, and
importing this package loads neither torch nor the data readers.
"""

from ._atomic import (
    check_writable,
    is_zarr_store,
    kill_point,
    remove,
    remove_leftovers,
    replace_dir,
    replace_file,
    temp_sibling,
    write_table_in_place,
)
from ._readers import quiet_zarr_warnings, read_data, read_zarr_table_lazily

__all__ = [
    "check_writable", "is_zarr_store", "kill_point", "quiet_zarr_warnings", "read_data",
    "read_zarr_table_lazily", "remove", "remove_leftovers", "replace_dir", "replace_file",
    "temp_sibling", "write_table_in_place",
]

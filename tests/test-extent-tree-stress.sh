#!/bin/bash
# Threads locking random, crossing and multi-stripe ranges of the extent
# tree never share a byte and never deadlock; in the TSan build, TSan
# watches them too (where the Criterion tests cannot start).
. "${top_srcdir:-..}/tests/functions.sh"

"$(cd "$top_builddir" && pwd)/tests/stress-extent-tree"

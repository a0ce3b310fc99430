"""What the model can see of the notebook, bounded: ``--with`` values, ``--error``, ``--image``.

``values``     live objects -> bounded, typed descriptions; the user message's content
``lasterror``  the last exception, trimmed to the user's frames (``--error``, ``%chat fix``)
``images``     Figure, PIL image, bytes, path, ``Out[n]``, last display -> PNG/JPEG
``displayed``  the images this kernel displayed (a wrapper of ``display_pub.publish``)
"""

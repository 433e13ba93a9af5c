"""Write a sample photo (scikit-image's astronaut, 256x256) to inpaint: `python examples/sample.py`."""

import sys

import numpy as np
from skimage import data
from skimage.transform import resize

from esdiff.io import write_image

out = sys.argv[1] if len(sys.argv) > 1 else "astronaut.png"
photo = resize(data.astronaut(), (256, 256), anti_aliasing=True)
write_image(out, np.asarray(photo, np.float32))
print(out)

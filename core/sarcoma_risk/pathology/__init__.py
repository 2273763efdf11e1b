"""The pathology pipeline: H&E whole-slide images to tile scores, a slide signature and a pathology score.

read -> preprocess -> model -> train -> infer, one job per module:

- :mod:`.slide` opens a slide with OpenSlide (SVS, NDPI, MRXS, generic tiled TIFF, DICOM WSI), checks
  its resolution and reads patches at a target spacing from the best pyramid level;
- :mod:`.tissue` finds tissue on a low-resolution image (saturation, median blur, threshold,
  closing, small-object removal) and leaves out background and pen marks;
- :mod:`.geojson` reads and writes QuPath GeoJSON (annotations in, tiles out) by QuPath's rules;
- :mod:`.regions` reads the tumor annotation (QuPath GeoJSON) as a shapely region in level-0 pixels;
- :mod:`.tiling` lays the patch grid: level-0 top-left coordinates of patches whose centre lies in
  tissue (and in the tumor region when one is given);
- :mod:`.model` builds ShuffleNetV2 with one logit and runs it (on a device, channels-last, fp32 or
  bf16/fp16) and makes the fixed probe batch of the precision check;
- :mod:`.augment` holds the stain/colour augmentation used in training;
- :mod:`.loader` reads training patches in batches, by threads or DataLoader worker processes;
- :mod:`.train` trains the patch model (slide labels, balanced sampling, early stopping on the slide
  C-index, checkpoints, data-parallel ranks); :mod:`.crossfit` cross-fits it and the signature over a
  cohort (run summary in :mod:`.summary`);
- :mod:`.infer` streams patches through reader threads and a bounded queue into the model;
- :mod:`.cache` keeps tile scores in HDF5 (CLAM/WSInfer layout) so nothing is scored twice;
- :mod:`.signature` turns patch probabilities into the whole-slide signature and a Cox score;
- :mod:`.pipeline` scores one slide end to end; :mod:`.outputs` writes the tile table, QuPath tiles
  and heatmap; :mod:`.scoring` does both for a case's slide and :mod:`.record` merges it into the
  case record's pathology section (``score-slide``, ``score-cohort`` and the QuPath bridge).

Importing this package imports none of its modules; each module imports the libraries it uses.
"""

"""`python -m flaskService convert MODEL.h5`: the service's command line (flaskService.predictor.main)."""
from flaskService.predictor import main

main()

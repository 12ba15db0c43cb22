"""`python -m flaskService convert MODEL.h5`: the service's command line (flaskService.digits.predictor.main)."""
from flaskService.digits.predictor import main

main()

"""``python sr_kd/test.py -opt options/test_X.yml``: BasicSR's test pipeline with sr_kd registered."""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

if __name__ == '__main__':
    from sr_kd.entry import run_pipeline
    run_pipeline('test')

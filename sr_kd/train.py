"""``python sr_kd/train.py -opt options/X.yml [--auto_resume] [--launcher pytorch]``: BasicSR's training
pipeline with sr_kd's archs, models, losses and datasets registered."""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir)))

if __name__ == '__main__':
    from sr_kd.entry import run_pipeline
    run_pipeline('train')

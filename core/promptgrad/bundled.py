"""What ships with promptgrad and runs with no download: the bundled model's names and the default task.

On the ground floor so that both the settings (config.py) and the model loader (model/models.py) name
the bundled model without one importing the other.
"""

# the bundled model as it is: SmolLM2-135M-Instruct (the instruction-tuned model), from its 4-bit Q4_1 GGUF
# file de-quantised to float32 (model/models.py); not the base SmolLM2-135M, nor its full-precision weights
BUNDLED_MODEL = "smollm2-135m-instruct-q4_1"
OLD_BUNDLED_MODEL_NAMES = ("smollm2-135m",)  # its name in run folders written before: read as BUNDLED_MODEL
BUNDLED_DATA = "antonyms"  # the task the default job learns

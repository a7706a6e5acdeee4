"""Local stand-ins for AWS: the Lambda harness (``lambda-sim``) and the ASL interpreter."""

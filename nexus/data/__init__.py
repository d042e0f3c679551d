"""Data: mp4 coding, synthetic clips, webdataset shards and the resumable batch stream."""

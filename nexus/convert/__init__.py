"""Released checkpoints in their publishers' layouts <-> the layouts nexus loads (wan: the original Wan2.1 folders;
omnivideo: the OmniVideo11B bundle)."""

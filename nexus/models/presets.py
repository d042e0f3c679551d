"""Configs of the real generators (METHOD.md, "Generators"), for random-weight benchmarks at real size."""
WAN_T2V_1_3B = dict(patch_size=[1, 2, 2], num_attention_heads=12, attention_head_dim=128, in_channels=16,
                    out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30, cross_attn_norm=True,
                    qk_norm="rms_norm_across_heads", eps=1e-6, rope_max_seq_len=1024)
WAN_T2V_14B = dict(WAN_T2V_1_3B, num_attention_heads=40, ffn_dim=13824, num_layers=40)
PRESETS = {"wan2.1-t2v-1.3b": WAN_T2V_1_3B, "wan2.1-t2v-14b": WAN_T2V_14B}

"""diffusers UNet2DModel priors (tiny random models built here; diffusers is an optional extra)."""

import pytest
import torch

import svimg.priors as priors


diffusers = pytest.importorskip("diffusers")


def _unet(out_channels=3, seed=0):
    torch.manual_seed(seed)
    unet = diffusers.UNet2DModel(
        sample_size=16, in_channels=3, out_channels=out_channels, layers_per_block=1,
        block_out_channels=(32, 32), down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=8,
    )
    for p in unet.parameters():
        torch.nn.init.normal_(p, std=0.05)
    return unet.eval()


def test_model_object_gives_linear_default_schedule_and_unet_output():
    unet = _unet()
    prior = priors.from_diffusers(unet)
    torch.testing.assert_close(prior.betas, torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64))
    assert prior.channels == 3 and prior.multiple == 2
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    t = torch.tensor([5, 900])
    with torch.no_grad():
        torch.testing.assert_close(prior.eps(x, t), unet(x, t).sample)
    assert prior.eps(x[:, :, :15, :11], t).shape == (2, 3, 15, 11)


def test_saved_pipeline_directory_uses_its_scheduler_betas(tmp_path):
    unet = _unet(out_channels=6)  # learned variance: eps is the first 3 channels
    sched = diffusers.DDPMScheduler(num_train_timesteps=500, beta_schedule="scaled_linear",
                                    beta_start=1e-4, beta_end=0.02)
    diffusers.DDPMPipeline(unet=unet, scheduler=sched).save_pretrained(tmp_path / "pipe")
    for prior in (priors.from_diffusers(tmp_path / "pipe"), priors.load(f"diffusers:{tmp_path / 'pipe'}")):
        torch.testing.assert_close(prior.betas, sched.betas.double())
        assert prior.name == "diffusers:pipe" and len(prior.sha256) == 64
        x = torch.rand(1, 3, 16, 16) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(prior.eps(x, torch.tensor([7])), unet(x, torch.tensor([7])).sample[:, :3])


def test_saved_model_directory_without_scheduler_is_linear(tmp_path):
    _unet().save_pretrained(tmp_path / "unet_only")
    prior = priors.from_diffusers(str(tmp_path / "unet_only"))
    torch.testing.assert_close(prior.betas, priors.linear_betas())


def test_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        priors.from_diffusers(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no UNet2DModel"):
        priors.from_diffusers(tmp_path / "empty")
    with pytest.raises(TypeError, match="model_or_path"):
        priors.from_diffusers(3)
    with pytest.raises(ValueError, match="prediction_type"):
        priors.from_diffusers(_unet(), scheduler=diffusers.DDPMScheduler(prediction_type="v_prediction"))

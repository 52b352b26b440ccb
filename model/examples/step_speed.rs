//! Times forward + backward of one architecture on random input (scratch).
use std::time::Instant;
use tch::{nn::VarStore, Device, Kind, Tensor};
use zftrain_model::{arch::ArchConfig, Arch, ArchName, InitScheme, Network};

extern "C" {
    fn mallopt(param: i32, value: i32) -> i32;
}

fn main() {
    if let Ok(v) = std::env::var("MALLOPT") {
        unsafe {
            match v.as_str() {
                "nommap" => {
                    println!("{} {}", mallopt(-4, 0), mallopt(-1, i32::MAX));
                }
                _ => {
                    println!("{} {}", mallopt(-3, 32 << 20), mallopt(-1, i32::MAX));
                }
            }
        }
    }
    tch::manual_seed(0);
    let vs = VarStore::new(Device::Cpu);
    let arch = Arch::builtin(
        ArchName::Zfnet,
        &ArchConfig {
            classes: 10,
            lrn: std::env::var("NOLRN").is_err(),
            ..Default::default()
        },
    )
    .unwrap();
    let net = Network::new(&vs.root(), arch, InitScheme::Kaiming).unwrap();
    let bf16 = std::env::var("FP32").is_err();
    let cl = std::env::var("CL").is_ok();
    let n = 16;
    let mut x = Tensor::randn([n, 3, 224, 224], tch::kind::FLOAT_CPU);
    if cl {
        x = x.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
    }
    let x = if bf16 { x.to_kind(Kind::BFloat16) } else { x };
    let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    let bufs: Vec<Tensor> = vs
        .trainable_variables()
        .iter()
        .map(|p| p.zeros_like())
        .collect();
    let step = || {
        let loss = net
            .forward(&x, true)
            .to_kind(Kind::Float)
            .cross_entropy_for_logits(&y);
        loss.backward();
        if std::env::var("OPT").is_ok() {
            let t = Instant::now();
            tch::no_grad(|| {
                for (p, buf) in vs.trainable_variables().iter_mut().zip(bufs.iter()) {
                    let mut grad = p.grad();
                    let _ = grad.addcmul_(p, &Tensor::from(1e-4f32));
                    let mut b = buf.shallow_clone();
                    let _ = b.g_mul_scalar_(0.9);
                    let _ = b.g_add_(&grad);
                    let _ = p.addcmul_(&b, &Tensor::from(-0.001f32));
                    p.zero_grad();
                }
            });
            eprintln!("opt {:?}", t.elapsed());
        }
    };
    step();
    let t = Instant::now();
    for _ in 0..4 {
        step();
    }
    println!(
        "bf16 {bf16} cl {cl}: {:.1} img/s",
        4.0 * n as f64 / t.elapsed().as_secs_f64()
    );
}

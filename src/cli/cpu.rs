//! `bertscope cpu`: what this CPU runs (see `bertscope::model::cpu`).

use anyhow::Result;
use clap::Args;

#[derive(Args)]
pub struct CpuArgs {
    /// Print the report as JSON on stdout.
    #[arg(long)]
    json: bool,
}

pub fn cpu(args: CpuArgs) -> Result<()> {
    let r = bertscope::model::cpu::report();
    if args.json {
        return super::print_json(&r);
    }
    let yes = |b: bool| if b { "yes" } else { "no" };
    let f = r.features;
    println!("CPU: {}, {} threads", r.model, r.threads);
    println!(
        "instructions: AVX2 {}, FMA {}, AVX-512F {}, AVX-512-BF16 {}, AMX-BF16 {}",
        yes(f.avx2),
        yes(f.fma),
        yes(f.avx512f),
        yes(f.avx512_bf16),
        yes(f.amx_bf16)
    );
    println!(
        "fp32: attention, softmax and GELU on {}",
        if r.lanes16 {
            "16 lanes (AVX-512F)"
        } else {
            "portable loops (no AVX-512F)"
        }
    );
    match r.bf16_kernel {
        Some(kernel) => println!("bf16 products: {kernel}"),
        None => println!("bf16 products: none (--precision bf16 is refused on this CPU)"),
    }
    if let Some(why) = &r.amx_not_taken_because {
        println!("AMX tiles not taken: {why}");
    }
    if let Some(speed) = &r.bf16_vs_fp32 {
        println!("bf16 against fp32: {}", speed.verdict);
    }
    Ok(())
}

//! `bulkhead vmi`: runs the monitor's own introspection code
//! (`monitor-core`) on a memory image — a QEMU `dump-guest-memory` ELF core
//! or a raw `pmemsave` dump. I/O and printing only.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, Context};
use monitor_core::checks::{self, Entry};
use monitor_core::linux::{Linux, Task};
use monitor_core::mem::CpuRegs;
use monitor_core::profile::Profile;
use serde_json::json;

/// Arguments of `bulkhead vmi`.
#[derive(clap::Args)]
pub struct Args {
    /// Memory image: QEMU ELF core (`dump-guest-memory`) or raw (`pmemsave`).
    image: PathBuf,
    /// Profile written by `bulkhead profile`.
    #[arg(long)]
    profile: PathBuf,
    /// Page-table root for raw images (hex); without it the kernel's page
    /// tables are found by search.
    #[arg(long, value_parser = parse_hex)]
    cr3: Option<u64>,
    /// IA32_LSTAR value for `check-msr` when the image does not carry MSRs (hex).
    #[arg(long, value_parser = parse_hex)]
    lstar: Option<u64>,
    /// The kernel package or bzImage the profile was built from: lets
    /// `check-text` name each changed byte, not just the page.
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// What to do.
    #[command(subcommand)]
    command: Cmd,
}

fn parse_hex(s: &str) -> Result<u64, String> {
    u64::from_str_radix(s.trim_start_matches("0x"), 16)
        .map_err(|e| format!("{s:?} is not a hex number: {e}"))
}

#[derive(clap::Subcommand, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    /// Processes from the task list: pid, ppid, uid, comm, state, address.
    Pslist,
    /// Processes as a tree.
    Pstree,
    /// Loaded modules: name, base, size.
    Lsmod,
    /// Every sys_call_table entry must point to a system call in kernel text.
    CheckSyscalls,
    /// Every present IDT gate must point into kernel text.
    CheckIdt,
    /// LSTAR must be entry_SYSCALL_64 (needs the value: `--lstar`).
    CheckMsr,
    /// Kernel text pages hashed against the kernel image.
    CheckText,
    /// Tasks by task list vs. PID IDR vs. memory scan; hidden ones flagged.
    Psxview,
}

fn task_json(t: &Task) -> serde_json::Value {
    json!({"pid": t.pid, "ppid": t.ppid, "uid": t.uid, "comm": t.comm, "state": t.state_char().to_string(),
           "kthread": t.kthread, "task": format!("{:#x}", t.addr)})
}

fn entries_out(o: &mut String, name: &str, entries: &[Entry], json_out: bool) -> ExitCode {
    let bad: Vec<&Entry> = entries.iter().filter(|e| !e.ok).collect();
    if json_out {
        let v: Vec<_> = entries
            .iter()
            .map(|e| json!({"index": e.index, "addr": format!("{:#x}", e.addr), "target": e.target.to_string(),
                            "expected": e.expected, "ok": e.ok}))
            .collect();
        let _ = writeln!(
            o,
            "{}",
            json!({"check": name, "clean": bad.is_empty(), "entries": v})
        );
    } else {
        for e in &bad {
            let expected = match &e.expected {
                Some(x) => format!(", expected {x}"),
                None => String::new(),
            };
            let _ = writeln!(
                o,
                "HOOKED {name} entry {} -> {:#x} ({}{expected})",
                e.index, e.addr, e.target
            );
        }
        let _ = writeln!(
            o,
            "{name}: {} entries checked, {} hooked",
            entries.len(),
            bad.len()
        );
    }
    if bad.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Output is gathered and written at once, so a closed pipe (`| head`)
/// is not an error.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut o = String::new();
    let r = run_into(args, &mut o);
    let _ = std::io::Write::write_all(&mut std::io::stdout(), o.as_bytes());
    r
}

fn run_into(args: Args, o: &mut String) -> anyhow::Result<ExitCode> {
    let pbytes = std::fs::read(&args.profile)
        .with_context(|| format!("cannot read profile {}", args.profile.display()))?;
    let profile =
        Profile::from_bytes(&pbytes).map_err(|e| anyhow!("{}: {e}", args.profile.display()))?;
    let image = monitor_profile::file_image::open(&args.image).map_err(|e| anyhow!("{e}"))?;
    let mut regs = image.regs;
    if let Some(lstar) = args.lstar {
        regs.get_or_insert(CpuRegs::default()).lstar = lstar;
    }
    if let Some(cr3) = args.cr3 {
        let r = regs.get_or_insert(CpuRegs::default());
        r.cr3 = cr3;
    }
    let linux = Linux::attach(&image, &profile, regs, image.vmcoreinfo.as_deref())
        .map_err(|e| anyhow!("{}: {e}", args.image.display()))?;
    let ctx = |e: monitor_core::linux::VmiError| anyhow!("{}: {e}", args.image.display());
    match args.command {
        Cmd::Pslist => {
            let tasks = linux.tasks().map_err(ctx)?;
            if args.json {
                let _ = writeln!(
                    o,
                    "{}",
                    serde_json::Value::Array(tasks.iter().map(task_json).collect())
                );
            } else {
                let _ = writeln!(
                    o,
                    "{:>7} {:>7} {:>6} {:<16} {:1} {:>18}",
                    "PID", "PPID", "UID", "COMM", "S", "TASK"
                );
                for t in &tasks {
                    let _ = writeln!(
                        o,
                        "{:>7} {:>7} {:>6} {:<16} {:1} {:#18x}",
                        t.pid,
                        t.ppid,
                        t.uid,
                        t.comm,
                        t.state_char(),
                        t.addr
                    );
                }
            }
        }
        Cmd::Pstree => {
            let tasks = linux.tasks().map_err(ctx)?;
            let mut lines = Vec::new();
            fn walk(
                tasks: &[Task],
                ppid: i32,
                depth: usize,
                out: &mut Vec<(usize, Task)>,
                seen: &mut Vec<i32>,
            ) {
                for t in tasks.iter().filter(|t| t.ppid == ppid && t.pid != ppid) {
                    if seen.contains(&t.pid) || depth > 64 {
                        continue;
                    }
                    seen.push(t.pid);
                    out.push((depth, t.clone()));
                    walk(tasks, t.pid, depth + 1, out, seen);
                }
            }
            let mut seen = vec![0];
            lines.push((0, tasks[0].clone()));
            walk(&tasks, 0, 1, &mut lines, &mut seen);
            if args.json {
                let v: Vec<_> = lines
                    .iter()
                    .map(|(d, t)| {
                        let mut j = task_json(t);
                        j["depth"] = json!(d);
                        j
                    })
                    .collect();
                let _ = writeln!(o, "{}", serde_json::Value::Array(v));
            } else {
                for (d, t) in &lines {
                    let _ = writeln!(o, "{}{} ({})", "  ".repeat(*d), t.comm, t.pid);
                }
            }
        }
        Cmd::Lsmod => {
            let mods = linux.modules().map_err(ctx)?;
            if args.json {
                let v: Vec<_> = mods
                    .iter()
                    .map(|m| json!({"name": m.name, "base": format!("{:#x}", m.base), "size": m.size, "module": format!("{:#x}", m.addr)}))
                    .collect();
                let _ = writeln!(o, "{}", serde_json::Value::Array(v));
            } else {
                let _ = writeln!(o, "{:<24} {:>18} {:>8}", "NAME", "BASE", "SIZE");
                for m in &mods {
                    let _ = writeln!(o, "{:<24} {:#18x} {:>8}", m.name, m.base, m.size);
                }
            }
        }
        Cmd::CheckSyscalls => {
            return Ok(entries_out(
                o,
                "sys_call_table",
                &checks::check_syscalls(&linux).map_err(ctx)?,
                args.json,
            ))
        }
        Cmd::CheckIdt => {
            let base = image.regs.map(|r| r.idt_base);
            return Ok(entries_out(
                o,
                "idt",
                &checks::check_idt(&linux, base).map_err(ctx)?,
                args.json,
            ));
        }
        Cmd::CheckMsr => {
            let lstar = args.lstar.or(regs.map(|r| r.lstar).filter(|&v| v != 0)).ok_or_else(|| {
                anyhow!("{}: the image carries no MSR values (QEMU dumps do not save LSTAR); pass --lstar <hex> from the hypervisor", args.image.display())
            })?;
            return Ok(entries_out(
                o,
                "msr",
                &checks::check_msr(&linux, lstar).map_err(ctx)?,
                args.json,
            ));
        }
        Cmd::CheckText => {
            let (pages, mut diffs) = checks::check_text(&linux).map_err(ctx)?;
            let mut bytes: Vec<(u64, String)> = Vec::new();
            if let Some(k) = &args.kernel {
                let input =
                    std::fs::read(k).with_context(|| format!("cannot read {}", k.display()))?;
                let kernel = monitor_profile::load_kernel(&input, None)
                    .map_err(|e| anyhow!("{}: {e}", k.display()))?;
                let elf = monitor_profile::image::Elf::parse(&kernel.vmlinux)
                    .map_err(|e| anyhow!("{}: {e}", k.display()))?;
                for d in diffs.iter_mut().filter(|d| d.readable) {
                    let link = profile.text.start + d.page as u64 * 4096;
                    let mut page = vec![0u8; 4096];
                    for (i, b) in page.iter_mut().enumerate() {
                        if let Some(v) = elf.at_va(link + i as u64, 1) {
                            *b = v[0];
                        }
                    }
                    let changed = checks::diff_page(&linux, d.page, &page).map_err(ctx)?;
                    if let Some(first) = changed.first() {
                        d.first = Some(first.clone());
                    }
                    bytes.extend(changed);
                }
            }
            if args.json {
                let v: Vec<_> = diffs
                    .iter()
                    .map(|d| json!({"page": d.page, "addr": format!("{:#x}", d.addr), "readable": d.readable,
                                    "symbol": d.first.as_ref().map(|f| f.1.clone())}))
                    .collect();
                let _ = writeln!(
                    o,
                    "{}",
                    json!({"check": "text", "pages": pages, "clean": diffs.is_empty(), "modified": v})
                );
            } else {
                for d in &diffs {
                    let _ = match &d.first {
                        Some((a, s)) => writeln!(
                            o,
                            "MODIFIED text page {:#x} (page {}), first change at {a:#x} {s}",
                            d.addr, d.page
                        ),
                        None => writeln!(o, "UNREADABLE text page {:#x} (page {})", d.addr, d.page),
                    };
                }
                for (a, s) in bytes.iter().take(64) {
                    let _ = writeln!(o, "  changed byte {a:#x} {s}");
                }
                let _ = writeln!(o, "text: {pages} pages checked, {} modified", diffs.len());
            }
            return Ok(if diffs.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
        Cmd::Psxview => {
            let v = checks::psxview(&linux).map_err(ctx)?;
            let hidden = v.iter().filter(|x| x.hidden()).count();
            if args.json {
                let a: Vec<_> = v
                    .iter()
                    .map(|x| {
                        let mut j = task_json(&x.task);
                        j["pslist"] = json!(x.in_list);
                        j["pid_idr"] = json!(x.in_idr);
                        j["scan"] = json!(x.in_scan);
                        j["hidden"] = json!(x.hidden());
                        j
                    })
                    .collect();
                let _ = writeln!(o, "{}", serde_json::Value::Array(a));
            } else {
                let _ = writeln!(
                    o,
                    "{:>7} {:<16} {:>18} {:>6} {:>7} {:>5}  ",
                    "PID", "COMM", "TASK", "PSLIST", "PID_IDR", "SCAN"
                );
                for x in &v {
                    let _ = writeln!(
                        o,
                        "{:>7} {:<16} {:#18x} {:>6} {:>7} {:>5}{}",
                        x.task.pid,
                        x.task.comm,
                        x.task.addr,
                        x.in_list,
                        x.in_idr,
                        x.in_scan,
                        if x.hidden() { "  HIDDEN" } else { "" }
                    );
                }
                let _ = writeln!(o, "psxview: {} tasks, {hidden} hidden", v.len());
            }
            return Ok(if hidden == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

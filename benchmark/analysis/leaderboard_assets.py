"""The leaderboard page's style sheet and script (inlined by `leaderboard_html.leaderboard_page`): the tables'
bars and whiskers, and sorting and filtering that the page's address keeps."""

PAGE_CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#d9e2ec;--head:#f0f4f8;--bar:#dbe7f3;--fill:#6b9bd1;--ci:#102a43;
--up:#2f9e6e;--down:#d1495b;--even:#8d99ae}
*{box-sizing:border-box}
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);
margin:0 auto;padding:1.5rem 2rem 3rem;max-width:110rem}
h1{font-size:1.7rem;margin:0 0 .3rem}h2{font-size:1.25rem;margin:2rem 0 .6rem;border-bottom:1px solid var(--line)}
p,li{max-width:52rem}.lede{color:var(--muted)}code{font-size:.92em;background:var(--head);padding:0 .25em}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15rem 1rem;margin:.8rem 0;font-size:.93rem}
.facts dt{color:var(--muted)}.facts dd{margin:0}
nav a{margin-right:1rem;color:#1c5d99}
.controls{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin:.4rem 0 .6rem}
.controls input,.controls select,.controls button{font:inherit;font-size:.9rem;padding:.2rem .4rem}
.controls input{min-width:16rem}.status{color:var(--muted);font-size:.9rem}
.scroll{overflow-x:auto}
table.board{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
table.plain{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums}
.plain th,.plain td{padding:.3rem .55rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
.plain th{background:var(--head)}
.board th,.board td{padding:.3rem .55rem;border-bottom:1px solid var(--line);white-space:nowrap}
.board th{background:var(--head);text-align:left;vertical-align:bottom}
.board tr.names th{cursor:pointer;user-select:none;white-space:normal;min-width:4.5rem}
.board tr.names th::after{content:" \\2195";color:#9aa5b1;font-size:.8em}
.board th[aria-sort=ascending]::after{content:" \\25B2";color:var(--ink)}
.board th[aria-sort=descending]::after{content:" \\25BC";color:var(--ink)}
.board tr.filters th{padding:.15rem .3rem}
.board tr.filters input{width:100%;min-width:3.5rem;font:inherit;font-size:.8rem;padding:.1rem .25rem}
.board td.num{text-align:right}.board tbody tr:nth-child(even){background:#fafbfc}
.board tbody tr:hover{background:#eef4fb}
.bar{position:relative;display:inline-block;width:6rem;height:.8rem;background:var(--bar);border-radius:2px;
vertical-align:middle;margin-right:.5rem}
.bar i{position:absolute;display:block}
.bar .fill{left:0;top:0;bottom:0;background:var(--fill);border-radius:2px 0 0 2px}
.bar .ci{top:calc(50% - 1px);height:2px;background:var(--ci)}
.bar .ci::before,.bar .ci::after{content:"";position:absolute;top:-4px;height:10px;width:2px;background:var(--ci)}
.bar .ci::before{left:-1px}.bar .ci::after{right:-1px}
.bar.diff{background:#f4f5f7}.bar .zero{left:50%;top:-2px;bottom:-2px;width:1px;background:var(--muted)}
.bar .pt{top:calc(50% - 4px);width:8px;height:8px;margin-left:-4px;border-radius:50%;background:var(--even)}
.bar.up .pt{background:var(--up)}.bar.down .pt{background:var(--down)}
.bar.up .ci,.bar.up .ci::before,.bar.up .ci::after{background:var(--up)}
.bar.down .ci,.bar.down .ci::before,.bar.down .ci::after{background:var(--down)}
.ref{color:var(--muted);font-style:italic}.txt{display:inline-block;vertical-align:middle}
.key{font-weight:600}.key.up{color:var(--up)}.key.down{color:var(--down)}.key.even{color:var(--even)}
.note{color:var(--muted);font-size:.92rem}
.tag{font-size:.75rem;border:1px solid var(--muted);border-radius:3px;padding:0 .25rem;color:var(--muted)}
.figures{display:grid;grid-template-columns:repeat(auto-fill,minmax(30rem,1fr));gap:1.2rem}
figure{margin:0}figure img,figure video{width:100%;border:1px solid var(--line)}
figcaption{font-size:.9rem;color:var(--muted)}.file{font-size:.85em}.differs{color:var(--down)}
"""

PAGE_JS = """
(function(){
"use strict";
const MAIN="pairs";
const cmp=(f,x)=>{const m=/^(<=|>=|<|>|=)\\s*(-?[0-9.]+)$/.exec(f.trim());
  if(!m)return null;const v=parseFloat(x),t=parseFloat(m[2]);if(isNaN(v))return false;
  return {"<":v<t,">":v>t,"<=":v<=t,">=":v>=t,"=":v===t}[m[1]];};
function setup(table){
  const tbody=table.tBodies[0],rows=Array.from(tbody.rows),heads=Array.from(table.querySelectorAll("tr.names th"));
  const keys=heads.map(th=>th.dataset.key),boxes=Array.from(table.querySelectorAll("tr.filters input"));
  const ctl=document.querySelector('.controls[data-for="'+table.id+'"]');
  const role=r=>ctl?ctl.querySelector('[data-role="'+r+'"]'):null;
  const numeric={};
  keys.forEach(k=>{numeric[k]=rows.every(r=>{const v=r.getAttribute("data-"+k);return v===""||!isNaN(Number(v));});});
  rows.forEach((r,i)=>{r._order=i;});
  const st={sort:"",dir:"",filter:"",pair:"",method:"",cols:{}};
  function apply(){
    let shown=0;
    for(const r of rows){
      let ok=(!st.filter||r.textContent.toLowerCase().includes(st.filter.toLowerCase()))
        &&(!st.pair||r.getAttribute("data-pair")===st.pair)&&(!st.method||r.getAttribute("data-method")===st.method);
      keys.forEach((k,i)=>{const f=st.cols[k];if(!ok||!f)return;const c=cmp(f,r.getAttribute("data-"+k));
        ok=c===null?r.cells[i].textContent.toLowerCase().includes(f.toLowerCase()):c;});
      r.hidden=!ok;if(ok)shown++;
    }
    const k=st.sort,sign=st.dir==="desc"?-1:1;
    const val=r=>{const v=r.getAttribute("data-"+k);return numeric[k]?(v===""?NaN:Number(v)):v;};
    const order=rows.slice().sort((a,b)=>{
      if(!k)return a._order-b._order;const x=val(a),y=val(b);
      const xm=numeric[k]?isNaN(x):x==="",ym=numeric[k]?isNaN(y):y==="";
      if(xm||ym)return xm===ym?a._order-b._order:(xm?1:-1);
      const d=numeric[k]?x-y:String(x).localeCompare(String(y));return d?sign*d:a._order-b._order;});
    order.forEach(r=>tbody.appendChild(r));
    heads.forEach(th=>th.setAttribute("aria-sort",th.dataset.key!==k?"none":st.dir==="desc"?"descending":"ascending"));
    const label=k?heads[keys.indexOf(k)].textContent:"";
    const status=ctl&&ctl.querySelector(".status");
    if(status)status.textContent=shown+" of "+rows.length+" rows shown"+(k?", sorted by "+label+" ("+(st.dir==="desc"?"descending":"ascending")+")":"");
    table.dataset.shown=String(shown);
  }
  function save(){
    if(table.id!==MAIN)return;const p=new URLSearchParams();
    ["sort","dir","filter","pair","method"].forEach(k=>{if(st[k])p.set(k,st[k]);});
    Object.keys(st.cols).forEach(k=>{if(st.cols[k])p.set("col."+k,st.cols[k]);});
    const h=p.toString();try{history.replaceState(null,"",h?"#"+h:location.pathname);}catch(e){location.hash=h;}
  }
  function load(){
    const h=location.hash.replace(/^#/,"");if(table.id!==MAIN||(h&&!h.includes("=")))return false;
    const p=new URLSearchParams(h);
    st.sort=keys.includes(p.get("sort"))?p.get("sort"):"";
    st.dir=st.sort?(p.get("dir")||heads[keys.indexOf(st.sort)].dataset.first):"";
    ["filter","pair","method"].forEach(k=>{st[k]=p.get(k)||"";});
    st.cols={};keys.forEach(k=>{if(p.get("col."+k))st.cols[k]=p.get("col."+k);});
    ["filter","pair","method"].forEach(k=>{if(role(k))role(k).value=st[k];});
    boxes.forEach(b=>{b.value=st.cols[b.dataset.key]||"";});return true;
  }
  heads.forEach(th=>{th.tabIndex=0;const go=()=>{const k=th.dataset.key;
    st.dir=st.sort===k?(st.dir==="asc"?"desc":"asc"):th.dataset.first;st.sort=k;apply();save();};
    th.addEventListener("click",go);th.addEventListener("keydown",e=>{if(e.key==="Enter")go();});});
  boxes.forEach(b=>b.addEventListener("input",()=>{st.cols[b.dataset.key]=b.value;apply();save();}));
  ["filter","pair","method"].forEach(k=>{const el=role(k);if(el)el.addEventListener("input",()=>{st[k]=el.value;apply();save();});});
  if(role("reset"))role("reset").addEventListener("click",()=>{Object.assign(st,{sort:"",dir:"",filter:"",pair:"",method:"",cols:{}});
    ["filter","pair","method"].forEach(k=>{if(role(k))role(k).value="";});boxes.forEach(b=>{b.value="";});apply();save();});
  window.addEventListener("hashchange",()=>{if(load())apply();});
  load();apply();
}
document.querySelectorAll("table.board").forEach(setup);
document.documentElement.dataset.ready="1";
})();
"""

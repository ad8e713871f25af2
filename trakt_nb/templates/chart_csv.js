// every chart's data as CSV, from the spec embedded next to it: the page stays one file (data: links, no request)
(function(){
function sets(s,out){if(!s||typeof s!=='object')return out;
 if(s.datasets)for(var k in s.datasets)out.push([k,s.datasets[k]]);
 if(s.data&&Array.isArray(s.data.values))out.push([s.data.name||'data',s.data.values]);
 ['layer','hconcat','vconcat','concat'].forEach(function(k){(s[k]||[]).forEach(function(x){sets(x,out);});});
 if(s.spec)sets(s.spec,out);return out;}
function cell(v){if(v===null||v===undefined)return '';v=typeof v==='object'?JSON.stringify(v):String(v);
 return /[",\n\r]/.test(v)?'"'+v.replace(/"/g,'""')+'"':v;}
function csv(rows){var cols=[];rows.forEach(function(r){Object.keys(r).forEach(function(k){if(cols.indexOf(k)<0)cols.push(k);});});
 return [cols.map(cell).join(',')].concat(rows.map(function(r){return cols.map(function(c){return cell(r[c]);}).join(',');})).join('\r\n')+'\r\n';}
function slug(t){return String(t||'chart').toLowerCase().replace(/[^a-z0-9]+/g,'-').replace(/^-|-$/g,'').slice(0,60)||'chart';}
document.querySelectorAll('script[data-for]').forEach(function(j,i){
 var spec;try{spec=JSON.parse(j.textContent);}catch(e){return;}
 var found=sets(spec,[]).filter(function(d){return Array.isArray(d[1])&&d[1].length;});if(!found.length)return;
 var title=spec.title&&(spec.title.text||spec.title);title=Array.isArray(title)?title.join(' '):title;
 var box=document.createElement('div');box.className='trakt-csv';
 found.forEach(function(d,n){var a=document.createElement('a');
  a.download=slug(title||('chart '+(i+1)))+(found.length>1?'-'+(n+1):'')+'.csv';
  a.href='data:text/csv;charset=utf-8,'+encodeURIComponent(csv(d[1]));
  a.textContent='Download the data'+(found.length>1?' ('+(n+1)+' of '+found.length+')':'')+' as CSV';box.appendChild(a);});
 var chart=document.getElementById(j.getAttribute('data-for'));(chart||j).insertAdjacentElement('afterend',box);});
})();
